"""Campaigns: a canvass with a code printed on its cards ("Text HI IA1129").

A resident's first text that is or holds an active campaign's code attributes them to it (first
touch wins: a resident already attributed keeps their campaign), and so does a canvasser's form.
Codes are letters and digits, stored in upper case and matched exactly, ignoring case
(bot/conversation/engine.py reads them; never fuzzily).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.casework import audit
from bot.storage.db import Database
from bot.storage.models import Campaign, Resident

CODE = re.compile(r"[A-Z0-9]{3,16}")
DOOR = "door"  # residents.channel of a canvasser's visit record (bot/messaging/canvass.py): not a resident
ZIP = re.compile(r"[0-9]{5}")


class CampaignError(ValueError):
    """A campaign change that cannot be made; the message is for the operator."""


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    code: str
    name: str
    zips: tuple[str, ...]
    starts_at: datetime | None
    ends_at: datetime | None

    def active(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)


def normalize_code(raw: str) -> str:
    code = raw.strip().upper()
    if not CODE.fullmatch(code):
        raise CampaignError("A code is 3 to 16 letters and digits, like IA1129.")
    return code


def parse_zips(raw: str | None) -> list[str]:
    zips = [z.strip() for z in (raw or "").split(",") if z.strip()]
    if bad := [z for z in zips if not ZIP.fullmatch(z)]:
        raise CampaignError(f"Not a ZIP code: {', '.join(bad)}")
    return zips


def add(
    db: Database,
    now: datetime,
    *,
    code: str,
    name: str,
    zips: list[str],
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> CampaignInfo:
    if not name.strip():
        raise CampaignError("Give the campaign a name.")
    if starts_at and ends_at and ends_at <= starts_at:
        raise CampaignError("The campaign must end after it starts.")
    row = Campaign(
        code=normalize_code(code),
        name=name.strip()[:120],
        zips=zips,
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=now,
    )
    try:
        with db.transaction() as s:
            s.add(row)
            s.flush()
            audit.record(s, "campaign.added", now, campaign=row.id, code=row.code)
            return _info(row)
    except IntegrityError:
        raise CampaignError(f"A campaign with the code {row.code} already exists.") from None


def end(db: Database, now: datetime, code: str) -> CampaignInfo:
    """End it now: its code no longer attributes anyone (residents it reached stay counted under it)."""
    with db.transaction() as s:
        row = s.scalar(select(Campaign).where(Campaign.code == normalize_code(code)).with_for_update())
        if row is None:
            raise CampaignError(f"There is no campaign {code.strip().upper()}.")
        if row.ends_at is None or row.ends_at > now:
            row.ends_at = now
            audit.record(s, "campaign.ended", now, campaign=row.id, code=row.code)
        return _info(row)


def listing(s: Session) -> list[CampaignInfo]:
    return [_info(row) for row in s.scalars(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id))]


def find(s: Session, code: str) -> CampaignInfo | None:
    try:
        row = s.scalar(select(Campaign).where(Campaign.code == normalize_code(code)))
    except CampaignError:
        return None
    return _info(row) if row else None


def active_codes(s: Session, now: datetime) -> frozenset[str]:
    """The codes a first text may carry now."""
    running = or_(Campaign.starts_at.is_(None), Campaign.starts_at <= now) & or_(
        Campaign.ends_at.is_(None), Campaign.ends_at > now
    )
    return frozenset(s.scalars(select(Campaign.code).where(running)))


def attribute(s: Session, resident: Resident, code: str, now: datetime) -> bool:
    """First touch wins: attribute the resident to the campaign unless they already have one."""
    if resident.campaign_id is not None:
        return False
    campaign_id = s.scalar(select(Campaign.id).where(Campaign.code == code))
    if campaign_id is None:
        return False
    resident.campaign_id = campaign_id
    audit.record(s, "campaign.attributed", now, resident_id=resident.id, campaign=campaign_id)
    return True


def _info(row: Campaign) -> CampaignInfo:
    return CampaignInfo(row.id, row.code, row.name, tuple(row.zips or ()), row.starts_at, row.ends_at)
