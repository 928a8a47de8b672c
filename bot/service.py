"""Applies one inbound text: store it, run the engine, turn effects into rows, store the replies."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from . import crisis, engine as eng, geo, keywords, logs
from .clock import Clock
from .config import Settings
from .crypto import phone_lookup
from .db import Database
from .models import AuditEvent, ConversationSession, FollowUp, Message, Referral, Resident
from .outbound import Outbound

log = logging.getLogger(__name__)

MAX_ENGINE_TEXT = 1000  # longer texts are stored whole but read only this far
CHECKIN_WAIT = timedelta(days=4)  # a check-in answer is read as such for this long
OPEN_REFERRAL = ("new", "claimed", "contacted")
# The terminal simulator is an operator typing; web chat has its own rate limit.
UNGUARDED_CHANNELS = ("terminal", "web")


# The queries every inbound text runs, built once: building a statement costs more than running it.
_SEEN = select(Message).where(Message.provider_sid == bindparam("provider_sid"))
_CONVERSATION = select(ConversationSession).where(ConversationSession.resident_id == bindparam("resident_id"))
_RECENT_INBOUND = select(func.count(Message.id)).where(
    Message.resident_id == bindparam("resident_id"), Message.direction == "in",
    Message.created_at > bindparam("since"))
_OPEN_REFERRAL = (select(Referral).where(Referral.resident_id == bindparam("resident_id"),
                                         Referral.status.in_(OPEN_REFERRAL))
                  .order_by(Referral.created_at.desc()).limit(1))
_PENDING_CHECKIN = (select(FollowUp).where(
    FollowUp.resident_id == bindparam("resident_id"), FollowUp.status.in_(("sent", "logged")),
    FollowUp.answered_at.is_(None), FollowUp.sent_at > bindparam("since"))
    .order_by(FollowUp.sent_at.desc()).limit(1))


@dataclass(frozen=True)
class Reply:
    id: int
    body: str


@dataclass
class Handled:
    replies: list[Reply]
    options: list[str] = field(default_factory=list)
    duplicate: bool = False
    referrals: list[int] = field(default_factory=list)  # created or raised: notify after commit


def clean(text: str | None) -> str:
    """Strip NUL (PostgreSQL text cannot hold it); keep everything else the phone sent."""
    return (text or "").replace("\x00", "")


class Service:
    """The conversation service behind every channel."""

    def __init__(self, settings: Settings, db: Database, engine: eng.Engine, outbound: Outbound,
                 clock: Clock) -> None:
        self.settings, self.db, self.engine, self.outbound, self.clock = settings, db, engine, outbound, clock
        self.on_referral: list[Callable[[int], None]] = []  # after-commit hooks (caseworker notices)

    def handle(self, *, channel: str, address: str, text: str | None, provider_sid: str | None = None,
               media_count: int = 0, carrier_keyword: str | None = None) -> Handled:
        """Handle one inbound message exactly once; a repeated provider id returns the first answer."""
        body, now = clean(text), self.clock.now()
        with self.db.transaction() as s:
            resident = self.lock_resident(s, channel, address, now)
            if provider_sid and (seen := s.scalar(_SEEN, {"provider_sid": provider_sid})):
                return Handled(self._replies_to(s, seen), duplicate=True)
            handled = self._handle_locked(s, resident, channel, body, provider_sid, media_count,
                                          carrier_keyword, now)
        for referral_id in handled.referrals:
            for hook in self.on_referral:
                hook(referral_id)
        return handled

    def _handle_locked(self, s: Session, resident: Resident, channel: str, body: str,
                       provider_sid: str | None, media_count: int, carrier_keyword: str | None,
                       now: datetime) -> Handled:
        first_contact = resident.last_seen_at is None
        inbound = Message(resident_id=resident.id, direction="in", channel=channel, kind="inbound", body=body,
                          provider_sid=provider_sid, status="received", num_media=media_count,
                          created_at=now, updated_at=now)
        s.add(inbound)
        s.flush()
        resident.last_seen_at = now
        if self._loop_guarded(s, resident, body, now):
            inbound.status = "loop_guard"
            logs.event("sms.loop_guard", resident=resident.id)
            return Handled([])
        conv = s.scalar(_CONVERSATION, {"resident_id": resident.id})
        if conv is None:
            conv = ConversationSession(resident_id=resident.id, state={}, last_activity_at=now)
            s.add(conv)
        referral = self._open_referral(s, resident.id)
        ctx = eng.Context(now=now, opted_out=resident.opted_out, language=resident.language,
                          handoff_open=self._handoff_open(referral), zip_code=resident.zip_code,
                          checkin_open=self._pending_checkin(s, resident.id, now) is not None,
                          office_open=self._office_open(now), idle_hours=self.settings.session_idle_hours,
                          first_contact=first_contact)
        outcome = self.engine.step(conv.state or None, eng.Inbound(body[:MAX_ENGINE_TEXT], media_count,
                                                                   carrier_keyword), ctx)
        if referral is not None:
            inbound.referral_id = referral.id
        raised = self._apply(s, resident, inbound, referral, outcome.effects, now)
        conv.state, conv.last_activity_at = outcome.state, now
        conv.flow, conv.step = outcome.state.get("flow"), outcome.state.get("step")
        replies = [self.outbound.record_reply(s, resident, text, inbound, flush=False) for text in outcome.replies]
        s.flush()  # one INSERT for all the replies (and their ids)
        logs.event("message.handled", resident=resident.id, channel=channel, replies=len(replies),
                   effects=",".join(type(e).__name__ for e in outcome.effects) or "-")
        return Handled([Reply(r.id, r.body or "") for r in replies], outcome.options, referrals=raised)

    # -- residents and state -------------------------------------------------------------

    def lock_resident(self, s: Session, channel: str, address: str, now: datetime) -> Resident:
        """Create the resident if new and lock the row, so one person's texts never interleave.
        A text from a number only ever finds the number's own record, never a web visitor's."""
        if channel == "web":
            unique, match, values = "chat_key", Resident.chat_key == address, {"chat_key": address}
        else:
            unique, match = "phone_lookup", Resident.with_phone(address) & (Resident.channel != "web")
            values = {"phone": address, "phone_lookup": phone_lookup(address)}
        # Looked for before the insert: a lookup made under an older DATA_KEY (before rotate-key)
        # differs from the one a new row gets, so the insert alone would not see the resident.
        found = select(Resident).where(match).order_by(Resident.id).limit(1).with_for_update()
        if (resident := s.scalars(found).first()) is not None:
            return resident
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        s.execute(insert(Resident).values(**values, channel=channel, created_at=now)
                  .on_conflict_do_nothing(index_elements=[unique]))
        return s.scalars(found).one()

    def _loop_guarded(self, s: Session, resident: Resident, body: str, now: datetime) -> bool:
        """Too many texts in a minute (a robot, a stuck phone): store but stay quiet for a while."""
        if resident.channel in UNGUARDED_CHANNELS:
            return False
        if resident.quiet_until is None or now >= resident.quiet_until:
            recent = s.scalar(_RECENT_INBOUND, {"resident_id": resident.id, "since": now - timedelta(minutes=1)})
            if recent <= self.settings.loop_guard_per_minute:
                return False
            resident.quiet_until = now + timedelta(minutes=self.settings.loop_guard_quiet_minutes)
        # Only a guarded text pays for these checks (the engine runs the crisis check itself anyway):
        # a person in danger is answered, and STOP works, whatever the rate.
        text = body[:MAX_ENGINE_TEXT]
        return crisis.detect(text) is None and keywords.classify(text) is not keywords.Compliance.STOP

    def _office_open(self, now: datetime) -> bool:
        local = now.astimezone(self.settings.program_timezone)
        return self.settings.office_hours.is_open(local.weekday(), local.time())

    @staticmethod
    def _open_referral(s: Session, resident_id: int) -> Referral | None:
        return s.scalar(_OPEN_REFERRAL, {"resident_id": resident_id})

    @staticmethod
    def _handoff_open(referral: Referral | None) -> bool:
        return referral is not None and referral.status != "new" and referral.bot_resumed_at is None

    @staticmethod
    def _pending_checkin(s: Session, resident_id: int, now: datetime) -> FollowUp | None:
        return s.scalar(_PENDING_CHECKIN, {"resident_id": resident_id, "since": now - CHECKIN_WAIT})

    @staticmethod
    def _replies_to(s: Session, inbound: Message) -> list[Reply]:
        rows = s.scalars(select(Message).where(Message.in_reply_to_id == inbound.id).order_by(Message.id))
        return [Reply(r.id, r.body or "") for r in rows]

    # -- effects ---------------------------------------------------------------------------

    def _apply(self, s: Session, resident: Resident, inbound: Message, referral: Referral | None,
               effects: list[Any], now: datetime) -> list[int]:
        """Turn the engine's effects into rows; return referrals to notify about after commit."""
        raised: list[int] = []
        for effect in effects:
            match effect:
                case eng.OptOut():
                    resident.opted_out_at = resident.opted_out_at or now
                    self._audit(s, "resident.opted_out", resident, now)
                case eng.OptIn():
                    resident.opted_out_at = None
                    self._audit(s, "resident.opted_in", resident, now)
                case eng.SetProfile(language=language, zip_code=zip_code):
                    resident.language = language or resident.language
                    if zip_code:
                        resident.zip_code = zip_code
                        resident.timezone = geo.zip_timezone(zip_code) or resident.timezone
                case eng.CreateReferral():
                    referral = self._raise_referral(s, resident, referral, effect, now)
                    inbound.referral_id = referral.id
                    raised.append(referral.id)
                case eng.ScheduleFollowUp(after=after, template=template):
                    s.add(FollowUp(resident_id=resident.id, referral_id=referral.id if referral else None,
                                   template=template, due_at=now + after, created_at=now))
                case eng.RelayToCaseworker():
                    if referral is not None:
                        referral.unread = True
                case eng.EndHandoff():
                    if referral is not None:
                        referral.bot_resumed_at, referral.unread = now, True
                        self._audit(s, "handoff.ended_by_resident", resident, now, referral)
                case eng.CheckinAnswer(outcome=answer):
                    raised += self._checkin_answer(s, resident, answer, now)
                case eng.RecordUnmet(category=category, reason=reason):
                    self._audit(s, "need.unmet", resident, now, detail={"category": category, "reason": reason})
        return raised

    def _raise_referral(self, s: Session, resident: Resident, referral: Referral | None,
                        effect: eng.CreateReferral, now: datetime) -> Referral:
        """Open a referral, or raise the open one (a crisis makes it urgent)."""
        if referral is None:
            referral = Referral(resident_id=resident.id, category=effect.category, reason=effect.reason,
                                zip_code=effect.zip_code or resident.zip_code, urgent=effect.urgent,
                                resource_ids=list(effect.resource_ids), created_at=now)
            s.add(referral)
            s.flush()
            self._audit(s, "referral.created", resident, now, referral,
                        {"category": effect.category, "reason": effect.reason, "urgent": effect.urgent})
            return referral
        referral.urgent = referral.urgent or effect.urgent
        referral.category = referral.category or effect.category
        referral.resource_ids = list({*referral.resource_ids, *effect.resource_ids})
        referral.unread, referral.bot_resumed_at = True, None
        self._audit(s, "referral.raised", resident, now, referral, {"reason": effect.reason})
        return referral

    def _checkin_answer(self, s: Session, resident: Resident, answer: str, now: datetime) -> list[int]:
        followup = self._pending_checkin(s, resident.id, now)
        if followup is None:
            return []
        followup.answer, followup.answered_at = answer, now
        referral = s.get(Referral, followup.referral_id) if followup.referral_id else None
        self._audit(s, "checkin.answered", resident, now, referral, {"answer": answer})
        if referral is None:
            return []
        if answer == "got_help":
            referral.status, referral.outcome, referral.closed_at = "closed", "got_help", now
            return []
        # not yet, or more help: the case goes back in front of a caseworker
        if referral.status == "closed":
            referral.status, referral.closed_at, referral.outcome = "new", None, None
        referral.unread = True
        return [referral.id]

    @staticmethod
    def _audit(s: Session, action: str, resident: Resident, now: datetime, referral: Referral | None = None,
               detail: dict[str, Any] | None = None) -> None:
        s.add(AuditEvent(at=now, action=action, resident_id=resident.id,
                         referral_id=referral.id if referral else None, detail=detail or {}))

