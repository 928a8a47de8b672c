"""Who is on duty: a caseworker's own duty hours, else the office hours on working days."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import ConfigError, Settings, parse_office_hours
from bot.messaging.workdays import Workdays
from bot.storage.models import Caseworker

log = logging.getLogger(__name__)


def on_duty(duty_hours: str | None, settings: Settings, now: datetime) -> bool:
    """Inside these duty hours (none: the office hours on a working day), in the program's time zone."""
    if not duty_hours:
        return Workdays.from_settings(settings).is_open(now)
    try:
        hours = parse_office_hours(duty_hours)
    except ConfigError:
        log.warning("caseworker duty hours cannot be read: %r", duty_hours[:40])
        return False
    local = now.astimezone(settings.program_timezone)
    return hours.is_open(local.weekday(), local.time())


def anyone_on_duty(s: Session, settings: Settings, now: datetime) -> bool:
    """Is any active caseworker on duty now (so a person will see a new referral soon)?"""
    return any_on_duty(list(s.scalars(select(Caseworker.duty_hours).where(Caseworker.active.is_(True)))), settings, now)


def any_on_duty(duty_hours: list[str | None], settings: Settings, now: datetime) -> bool:
    """Is any of these active caseworkers' duty hours (None: the office hours) open now?"""
    return any(on_duty(h, settings, now) for h in duty_hours)
