"""A canvasser's visit at a door: the number proven by a code the resident reads back, then the
household's needs become referrals in the inbox, with one discreet welcome text and the usual check-in.

Each visit has its own record (channel "door", like a web chat visitor: a key, never a number). The
code goes to the number through bot/messaging/verify.py; once it comes back, the door record is
linked to the number's own SMS record, found or created, never merged. The visit's key is made by
the server and bound to the canvasser who asked for it, so one canvasser cannot use another's visit.
The welcome text and the check-in are follow-ups: the dispatcher sends them inside the sending
window, through Outbound, which applies the contact preference to every text.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.casework import audit, campaigns
from bot.casework.campaigns import DOOR
from bot.conversation.contact import ContactPreference
from bot.conversation.flows import M
from bot.directory import geo
from bot.messaging import verify
from bot.messaging.staffing import anyone_on_duty
from bot.messaging.triage import Tier
from bot.runtime import Runtime
from bot.storage.models import FollowUp, Note, Referral, Resident

REASON = "canvass"  # referrals.reason: met at the door
CHECKIN_AFTER = timedelta(days=3)  # as the flows' own check-in (flows/closing.yaml)
MAX_NOTE = 1000
HEARD_SLACK = timedelta(minutes=5)  # a phone's clock a little ahead of ours


class VisitRefused(ValueError):
    """The visit cannot be recorded; the message is for the canvasser."""


@dataclass(frozen=True)
class Visit:
    needs: tuple[str, ...]
    zip_code: str | None
    language: str
    preference: ContactPreference
    note: str
    campaign: str | None  # a campaign's code
    heard_at: datetime | None  # when the resident said yes to texts, by the canvasser's phone


@dataclass(frozen=True)
class Recorded:
    resident_id: int
    referrals: tuple[int, ...]
    duplicate: bool = False  # the same visit sent again (a retry after a lost answer)


def new_visit() -> str:
    """A visit's key, for the canvasser's phone to send back with the code and the visit."""
    return secrets.token_urlsafe(24)


def door_key(rt: Runtime, canvasser_id: int, visit: str) -> str:
    """The door record's key: bound to the canvasser, so nobody else's phone can use the visit."""
    message = f"door:{canvasser_id}:{visit}".encode()
    return hmac.new(rt.settings.secret_key.encode(), message, hashlib.sha256).hexdigest()


def send_code(rt: Runtime, canvasser_id: int, visit: str, raw_phone: str) -> None:
    verify.request_code(rt, door_key(rt, canvasser_id, visit), raw_phone, channel=DOOR)


def check_code(rt: Runtime, canvasser_id: int, visit: str, raw_phone: str, raw_code: str) -> None:
    verify.confirm_code(rt, door_key(rt, canvasser_id, visit), raw_phone, raw_code)


def record_visit(rt: Runtime, canvasser_id: int, visit: str, v: Visit) -> Recorded:
    """The household's needs as referrals on the number's own record, once per visit."""
    now = rt.clock.now()
    if not v.needs:
        raise VisitRefused("needs: tick at least one need")
    with rt.db.transaction() as s:
        door = s.scalar(
            select(Resident).where(Resident.chat_key == door_key(rt, canvasser_id, visit)).with_for_update()
        )
        if door is None or door.linked_resident_id is None:
            raise VisitRefused("code: the number is not proven yet; text a code and type the one they read back")
        resident = s.get(Resident, door.linked_resident_id, with_for_update=True)
        assert resident is not None
        if door.last_seen_at is not None:  # recorded already: the phone sent it again
            done = s.scalars(select(Referral.id).where(Referral.resident_id == resident.id, Referral.reason == REASON))
            return Recorded(resident.id, tuple(done), duplicate=True)
        door.last_seen_at = now
        _profile(s, resident, v, canvasser_id, now)
        referrals = _referrals(s, rt, resident, v, canvasser_id, now)
        if v.preference == ContactPreference.ANY:
            checks_in = all(rt.engine.flows.checks_in(need) for need in v.needs)
            _follow_ups(s, resident, referrals[0], now, checks_in=checks_in)
        audit.record(
            s, "canvass.visit", now, actor_id=canvasser_id, resident_id=resident.id, needs=list(v.needs), door=door.id
        )
        recorded = Recorded(resident.id, tuple(r.id for r in referrals))
    for referral_id in recorded.referrals:
        for hook in rt.service.on_referral:
            hook(referral_id)
    return recorded


def _profile(s: Session, resident: Resident, v: Visit, canvasser_id: int, now: datetime) -> None:
    """What the household told the canvasser: language, ZIP, spoken consent, how we may text, campaign."""
    resident.language = v.language
    if v.zip_code:
        resident.zip_code = v.zip_code
        resident.timezone = geo.zip_timezone(v.zip_code) or resident.timezone
    heard = v.heard_at if v.heard_at and now - timedelta(days=1) <= v.heard_at <= now + HEARD_SLACK else now
    heard = min(heard, now)
    resident.consent_texts, resident.consent_recorded_at = True, heard
    audit.record(
        s,
        "consent.recorded",
        now,
        actor_id=canvasser_id,
        resident_id=resident.id,
        channel=DOOR,
        heard_by=canvasser_id,
        heard_at=heard.isoformat(),
    )
    if resident.contact_preference != v.preference:
        resident.contact_preference = v.preference
        audit.record(
            s,
            "resident.contact_preference",
            now,
            actor_id=canvasser_id,
            resident_id=resident.id,
            preference=str(v.preference),
            via=DOOR,
        )
    if v.campaign and v.campaign in campaigns.active_codes(s, now):
        campaigns.attribute(s, resident, v.campaign, now)


def _referrals(
    s: Session, rt: Runtime, resident: Resident, v: Visit, canvasser_id: int, now: datetime
) -> list[Referral]:
    on_duty = anyone_on_duty(s, rt.settings, now)
    referrals = [
        Referral(
            resident_id=resident.id,
            category=need,
            zip_code=v.zip_code or resident.zip_code,
            reason=REASON,
            urgent=False,
            tier=Tier.TRUSTED,
            created_at=now,
            notified_at=now if on_duty else None,
        )
        for need in v.needs
    ]
    s.add_all(referrals)
    s.flush()
    for referral in referrals:
        audit.record(
            s,
            "referral.created",
            now,
            actor_id=canvasser_id,
            resident_id=resident.id,
            referral_id=referral.id,
            category=referral.category,
            reason=REASON,
            urgent=False,
        )
    if v.note.strip():
        s.add(
            Note(
                referral_id=referrals[0].id, caseworker_id=canvasser_id, body=v.note.strip()[:MAX_NOTE], created_at=now
            )
        )
    return referrals


def _follow_ups(s: Session, resident: Resident, referral: Referral, now: datetime, *, checks_in: bool) -> None:
    """One welcome text now (the dispatcher holds it for the sending window), and the usual check-in
    unless a need's own flow never checks in (safety, violence)."""
    texts = [(M.WELCOME, now)] + ([(M.CHECKIN, now + CHECKIN_AFTER)] if checks_in else [])
    for template, due in texts:
        s.add(FollowUp(resident_id=resident.id, referral_id=referral.id, template=template, due_at=due, created_at=now))
