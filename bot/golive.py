"""Go-live checks: what a real program must fix before residents rely on the line.

`peaceline check` prints each finding as a warning (and `--strict` fails on any), the `serve` banner
repeats them, and `create_app` logs them; with PEACELINE_ENV=production the app refuses to start on
the findings in `REFUSED_IN_PRODUCTION`, in one line that names each. No Flask here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError

from bot import logs
from bot.config import DAYS, ConfigError, OfficeHours, Settings, parse_office_hours
from bot.directory.resources import Directory
from bot.storage.db import Database
from bot.storage.models import Caseworker

if TYPE_CHECKING:
    from bot.runtime import Runtime

# The NANP's fictional numbers: 555-0100 to 555-0199 in any area code (+1 NXX 555 01xx).
FICTIONAL = re.compile(r"^\+1\d{3}55501\d\d$")
PLACEHOLDER = "PLACEHOLDER"
SLOT_MINUTES = 15  # office hours are checked for a caseworker on duty this finely


class Check(StrEnum):
    SAMPLE_DATA = "sample_data"
    PLACEHOLDER_NUMBERS = "placeholder_numbers"
    NO_ESCALATION_PHONES = "no_escalation_phones"
    NO_STAFF_ON_DUTY = "no_staff_on_duty"
    NO_TWILIO = "no_twilio"
    NO_PUBLIC_BASE_URL = "no_public_base_url"


REFUSED_IN_PRODUCTION = (Check.NO_PUBLIC_BASE_URL, Check.SAMPLE_DATA, Check.PLACEHOLDER_NUMBERS)


@dataclass(frozen=True)
class Finding:
    check: Check
    text: str

    def __str__(self) -> str:
        return f"go-live: warning: {self.check}: {self.text}"


@dataclass(frozen=True)
class Staff:
    """An active caseworker as the staffing check sees them."""

    phone: str | None
    duty_hours: str | None


def config_warnings(settings: Settings, directory: Directory) -> list[Finding]:
    """Every finding that needs only the settings and the directory (no database)."""
    found = []
    if directory.sample_data:
        found.append(
            Finding(
                Check.SAMPLE_DATA,
                f"{settings.resources_path} says sample_data: true (verify every entry, then set it to false)",
            )
        )
    if placeholders := placeholder_numbers(settings, directory):
        shown = ", ".join(placeholders[:3]) + (f" and {len(placeholders) - 3} more" if len(placeholders) > 3 else "")
        found.append(
            Finding(Check.PLACEHOLDER_NUMBERS, f"{len(placeholders)} fictional or placeholder number(s): {shown}")
        )
    if not settings.escalation_phones:
        found.append(
            Finding(
                Check.NO_ESCALATION_PHONES,
                "ESCALATION_PHONES is not set: an urgent referral when nobody is on duty reaches nobody",
            )
        )
    if settings.sender_name != "twilio":
        found.append(
            Finding(
                Check.NO_TWILIO,
                "no Twilio account (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN): texts are only logged, never sent",
            )
        )
    if not settings.public_base_url:
        found.append(
            Finding(
                Check.NO_PUBLIC_BASE_URL,
                "PUBLIC_BASE_URL is not set: webhook signatures are checked against the Host each request names",
            )
        )
    return found


def placeholder_numbers(settings: Settings, directory: Directory) -> list[str]:
    """Where a fictional 555-01xx number or one marked PLACEHOLDER is configured, as 'service id: number'."""
    found = [
        f"{service.id}: {phone.number}"
        for service in directory.services
        for phone in service.phones
        if FICTIONAL.match(phone.number) or PLACEHOLDER in (phone.description or "").upper()
    ]
    configured = [*settings.escalation_phones, settings.twilio_from_number or ""]
    return found + [f"settings: {number}" for number in configured if FICTIONAL.match(number)]


def staffing_warning(settings: Settings, staff: Iterable[Staff]) -> Finding | None:
    """A warning naming the first office-hours moment no caseworker with a phone is on duty."""
    hours = [h for s in staff if s.phone and (h := _hours(s.duty_hours, settings.office_hours)) is not None]
    for day, at in _office_slots(settings.office_hours):
        if not any(h.is_open(day, at) for h in hours):
            return Finding(
                Check.NO_STAFF_ON_DUTY,
                f"no caseworker with a phone is on duty {DAYS[day].capitalize()} {at:%H:%M} "
                "(inside OFFICE_HOURS): new referrals then notify nobody (create-caseworker --phone --duty-hours)",
            )
    return None


def _hours(duty_hours: str | None, office: OfficeHours) -> OfficeHours | None:
    if not duty_hours:
        return office
    try:
        return parse_office_hours(duty_hours)
    except ConfigError:
        return None


def _office_slots(office: OfficeHours) -> Iterable[tuple[int, time]]:
    opens, closes = office.opens.hour * 60 + office.opens.minute, office.closes.hour * 60 + office.closes.minute
    for day in sorted(office.days):
        for minute in range(opens, closes, SLOT_MINUTES):
            yield day, time(minute // 60, minute % 60)


def active_staff(db: Database) -> list[Staff]:
    """The active caseworkers, or none when the database has no schema yet."""
    try:
        with db.sessions() as s:
            rows = s.execute(select(Caseworker.phone, Caseworker.duty_hours).where(Caseworker.active.is_(True)))
            return [Staff(phone, duty) for phone, duty in rows]
    except (OperationalError, ProgrammingError):
        return []


def all_warnings(settings: Settings, directory: Directory, db: Database) -> list[Finding]:
    found = config_warnings(settings, directory)
    if (staffing := staffing_warning(settings, active_staff(db))) is not None:
        found.append(staffing)
    return found


def refusal(settings: Settings, warnings: Iterable[Finding]) -> str | None:
    """In production, the one line that stops the start (naming each reason); otherwise None."""
    if not settings.production:
        return None
    refused = [w for w in warnings if w.check in REFUSED_IN_PRODUCTION]
    if not refused:
        return None
    return "PEACELINE_ENV=production refuses to start: " + "; ".join(_refusal_text(w) for w in refused)


def _refusal_text(warning: Finding) -> str:
    if warning.check == Check.NO_PUBLIC_BASE_URL:
        return (
            "PUBLIC_BASE_URL must be set when PEACELINE_ENV=production "
            "(webhook signatures are checked against it, not against the Host a client sends)"
        )
    return warning.text


def enforce(rt: Runtime) -> None:
    """Production refuses sample data, placeholder numbers and no PUBLIC_BASE_URL, in one line naming
    each; development (PEACELINE_ENV unset) starts, and logs every go-live warning. The app and the
    scheduler both start through here."""
    warnings = config_warnings(rt.settings, rt.directory)
    if (refused := refusal(rt.settings, warnings)) is not None:
        rt.db.dispose()
        raise ConfigError(refused)
    for warning in warnings:
        logs.logger.warning("start.go_live %s", warning)
