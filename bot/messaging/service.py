"""Applies one inbound text: store it, run the engine, turn effects into rows, store the replies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot import logs
from bot.casework import campaigns
from bot.casework.retention import erase
from bot.clock import Clock
from bot.config import Settings
from bot.conversation import engine as eng
from bot.conversation import keywords
from bot.conversation.contact import ContactPreference, default_for
from bot.conversation.flows import M
from bot.conversation.segments import segments
from bot.directory import geo
from bot.messaging import triage
from bot.messaging.outbound import Outbound
from bot.messaging.staffing import any_on_duty, anyone_on_duty
from bot.messaging.workdays import Workdays
from bot.storage import turns
from bot.storage.crypto import opt_out_marker, phone_lookup
from bot.storage.db import Database, rows_changed
from bot.storage.models import AuditEvent, ConversationSession, FollowUp, Message, OptOutMarker, Referral, Resident
from bot.storage.statuses import FollowUpStatus, MessageStatus, Outcome, ReferralStatus
from bot.storage.turns import CHECKIN_SENT, OPEN_REFERRAL

log = logging.getLogger(__name__)

MAX_ENGINE_TEXT = 1000  # longer texts are stored whole but read only this far
CHECKIN_WAIT = timedelta(days=4)  # a check-in answer is read as such for this long
# The terminal simulator is an operator typing; web chat has its own rate limit.
UNGUARDED_CHANNELS = ("terminal", "web")
# Records known by a key, never by a number: a web chat visitor, a canvasser's visit at a door.
KEYED_CHANNELS = ("web", "door")


# The slow path's queries, built once: building a statement costs more than running it.
_SEEN = select(Message.id).where(Message.provider_sid == bindparam("provider_sid"))
_CONVERSATION = (
    select(ConversationSession).where(ConversationSession.resident_id == bindparam("resident_id")).with_for_update()
)
_OPEN_REFERRAL = (
    select(Referral)
    .where(Referral.resident_id == bindparam("resident_id"), Referral.status.in_(OPEN_REFERRAL))
    .order_by(Referral.created_at.desc(), Referral.id.desc())
    .limit(1)
)
_PENDING_CHECKIN = (
    select(FollowUp)
    .where(
        FollowUp.resident_id == bindparam("resident_id"),
        FollowUp.template == M.CHECKIN,
        FollowUp.status.in_(CHECKIN_SENT),
        FollowUp.answered_at.is_(None),
        FollowUp.sent_at > bindparam("since"),
    )
    .order_by(FollowUp.sent_at.desc())
    .limit(1)
)


class _Who(Protocol):
    """The resident as a turn reads them: an ORM Resident or the fast path's locked row."""

    id: int
    channel: str
    language: str | None
    zip_code: str | None
    timezone: str | None
    opted_out_at: datetime | None
    contact_preference: str
    contact_chosen_at: datetime | None
    campaign_id: int | None
    linked_resident_id: int | None


class _Case(Protocol):
    """The open referral as a turn reads it: an ORM Referral or the fast path's row."""

    status: str
    bot_resumed_at: datetime | None
    on_call_told_at: datetime | None


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
    on_duty: bool = True  # a caseworker is on duty (none: there is nobody to notify)
    escalate: list[int] = field(default_factory=list)  # urgent, nobody on duty: tell the person on call now
    new_urgent: list[int] = field(default_factory=list)  # urgent referrals this text opened
    erase: int | None = None  # DELETE confirmed: this resident is erased once the last text is stored


@dataclass(frozen=True)
class _Inputs:
    """What the engine was given, to run it again once the person on call has been told."""

    state: dict | None
    inbound: eng.Inbound
    ctx: eng.Context
    channel: str


_Known = tuple[str | None, str | None, str | None]  # what a profile answer changes: language, ZIP, time zone


@dataclass
class _FastWrites:
    """What the fast path's effects add to the turn, in memory until it stores them."""

    case: turns.Case | None
    profile: _Known
    case_changed: bool = False
    raised: list[eng.CreateReferral] = field(default_factory=list)  # each opened or raised the referral
    opened: bool = False  # the referral is new: inserted, not updated
    audits: list[tuple[str, turns.Case | None, dict[str, Any]]] = field(default_factory=list)
    followups: list[tuple[turns.Case | None, str, datetime]] = field(default_factory=list)

    def audit(self, action: str, detail: dict[str, Any]) -> None:
        self.audits.append((action, self.case, detail))

    def rows(self, resident_id: int, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The audit rows and follow-ups, once the referral has its id."""
        audits = [
            {"at": now, "action": action, "resident_id": resident_id, "referral_id": case.id if case else None}
            | {"detail": detail, "actor_id": None}
            for action, case, detail in self.audits
        ]
        followups = [
            {"resident_id": resident_id, "referral_id": case.id if case else None, "template": template}
            | {"due_at": due, "created_at": now}
            for case, template, due in self.followups
        ]
        return audits, followups


def clean(text: str | None) -> str:
    """Strip NUL (PostgreSQL text cannot hold it); keep everything else the phone sent."""
    return (text or "").replace("\x00", "")


class Service:
    """The conversation service behind every channel."""

    def __init__(self, settings: Settings, db: Database, engine: eng.Engine, outbound: Outbound, clock: Clock) -> None:
        self.settings, self.db, self.engine, self.outbound, self.clock = settings, db, engine, outbound, clock
        self.workdays = Workdays.from_settings(settings)
        self.on_referral: list[Callable[[int], None]] = []  # after-commit hooks (caseworker notices)
        # Tells the person on call about an urgent referral now; True once the text reached Twilio.
        self.escalator: Callable[[int], bool] | None = None

    def handle(
        self,
        *,
        channel: str,
        address: str,
        text: str | None,
        provider_sid: str | None = None,
        media_count: int = 0,
        carrier_keyword: str | None = None,
        client: str | None = None,
    ) -> Handled:
        """Handle one inbound message exactly once; a repeated provider id returns the first answer.

        An ordinary text takes four statements and the commit (storage/turns.py); one that opens or
        raises a referral a few more, still in Core. Any other turn (an opt-out, a check-in's answer,
        a contact preference, a campaign code, a web visitor's referral), or one the conversation row
        cannot answer alone, takes the ORM path. `client` is a web visitor's network address (as
        ProxyFix sees it), for the per-address cap on new web referrals.
        """
        body, now = clean(text), self.clock.now()
        inbound = eng.Inbound(body[:MAX_ENGINE_TEXT], media_count, carrier_keyword)
        with self.db.connection() as conn:  # Core: a Session is made only for the ORM path
            who, facts = turns.lock_and_read(conn, channel, address, provider_sid, CHECKIN_WAIT, now)
            if facts is not None and facts.seen_id is not None:
                return self._duplicate(conn, facts.seen_id, provider_sid)
            fast = self._fast_turn(conn, who, facts, channel, body, inbound, provider_sid, now) if facts else None
            inputs: _Inputs | None
            if fast is not None:
                handled, inputs = fast
            else:
                with Session(bind=conn, expire_on_commit=False) as s:  # joins the transaction, never ends it
                    resident = self.lock_resident(s, channel, address, now)
                    if provider_sid and (seen := s.scalar(_SEEN, {"provider_sid": provider_sid})):
                        return self._duplicate(conn, seen, provider_sid)
                    handled, inputs = self._handle_locked(
                        s, resident, channel, body, inbound, provider_sid, now, client
                    )
                    s.commit()  # flushes; the connection's transaction commits below
        if handled.erase is not None:
            erase(self.db, self.clock.now(), handled.erase, self.settings.secret_key)
        self._escalate(handled, inputs)
        for referral_id in handled.referrals if handled.on_duty else ():
            for hook in self.on_referral:
                hook(referral_id)
        return handled

    @staticmethod
    def _duplicate(conn: Connection, inbound_id: int, provider_sid: str | None) -> Handled:
        logs.event("message.handled", sid=provider_sid, duplicate=True)
        return Handled([Reply(r.id, r.body or "") for r in turns.replies_to(conn, inbound_id)], duplicate=True)

    def _fast_turn(
        self,
        conn: Connection,
        who: Any,
        facts: turns.Facts,
        channel: str,
        body: str,
        inbound: eng.Inbound,
        provider_sid: str | None,
        now: datetime,
    ) -> tuple[Handled, _Inputs] | None:
        """The turn in Core from the resident's locked row and the conversation row alone; None (nothing
        written) when the ORM path must take it: a stale pointer, the loop guard, an effect it cannot
        store (opt-outs, check-in answers, contact preferences, campaigns, a web visitor's referral)."""
        if facts.stale or facts.checkin_sent_at is not None:  # a check-in's answer needs what it asked about
            return None
        if (
            facts.campaigns_running
            and who.campaign_id is None
            and self.engine.may_start(facts.state, now, self.settings.session_idle_hours)
        ):
            return None  # a campaign code may attribute them (first touch wins)
        recent = turns.count_text(facts.recent_since, facts.recent_count, now)
        if self._may_guard(who, recent[1], now, holding=self.engine.holding(facts.state, now)):
            return None
        on_duty = any_on_duty(facts.duty_hours, self.settings, now)
        first = who.last_seen_at is None
        ctx = self._context(who, facts.referral, None, now, first, on_duty)
        outcome = self.engine.step(facts.state, inbound, ctx)
        case = facts.referral
        # Raising the open referral changes what a caseworker may be changing too: lock it first.
        raises = any(isinstance(effect, eng.CreateReferral) for effect in outcome.effects)
        if case is not None and raises and (case := turns.lock_case(conn, case)) is None:
            return None
        writes = self._fast_effects(conn, who, case, outcome.effects, now, on_duty)
        if writes is None:
            return None
        case = writes.case
        if case is not None and writes.opened:  # its id first: the rows below point at it
            case.id = turns.open_case(conn, case)
        received = {
            **self.outbound.reply_row(who.id, channel, "", facts.next_id),
            **{"direction": "in", "kind": "inbound", "body": body, "provider_sid": provider_sid},
            **{
                "status": MessageStatus.RECEIVED,
                "segments": 0,
                "num_media": inbound.media_count,
                "in_reply_to_id": None,
            },
            "referral_id": case.id if case is not None else None,
        }
        replies = [self.outbound.reply_row(who.id, channel, text, facts.next_id) for text in outcome.replies]
        turns.insert_rows(conn, *writes.rows(who.id, now))
        with turns.batched(conn):  # one round trip on PostgreSQL: the messages' ids, read last, end it
            if case is not None and writes.case_changed and not writes.opened:
                turns.store_case(conn, case, locked=bool(writes.raised))
            if first or writes.profile != (who.language, who.zip_code, who.timezone):
                turns.update_resident(conn, who.id, writes.profile, now)
            turns.save_state(conn, who.id, facts, outcome.state, now, recent)
            _, *ids = turns.store_messages(conn, [{**received, "id": facts.next_id}, *replies])
        if writes.opened and case is not None and case.id is not None:  # the conversation row points at it
            turns.note_open_referral(conn, who.id, case.id)
        self._log_handled(provider_sid, who.id, channel, len(ids), outcome.effects)
        handled = Handled([Reply(i, r["body"]) for i, r in zip(ids, replies, strict=True)], outcome.options)
        handled.on_duty = on_duty
        if case is not None and case.id is not None and writes.raised:
            urgent = any(e.urgent for e in writes.raised)
            handled.referrals.append(case.id)
            if urgent and not on_duty and case.on_call_told_at is None:
                handled.escalate.append(case.id)
            if urgent and writes.opened:
                handled.new_urgent.append(case.id)
        return handled, _Inputs(facts.state, inbound, ctx, channel)

    def _fast_effects(
        self, conn: Connection, who: Any, case: turns.Case | None, effects: list[Any], now: datetime, on_duty: bool
    ) -> _FastWrites | None:
        """The effects as rows for the fast path to store, or None when one needs the ORM path."""
        writes = _FastWrites(case, (who.language, who.zip_code, who.timezone))
        for effect in effects:
            match effect:
                case eng.CreateReferral():
                    if not self._fast_referral(conn, writes, who, effect, now, on_duty):
                        return None
                case eng.SetProfile():
                    writes.profile = _profile(writes.profile, effect)
                case eng.ScheduleFollowUp(after=after, template=template):
                    writes.followups.append((writes.case, template, now + after))
                case eng.RelayToCaseworker() if writes.case is not None:
                    writes.case.unread, writes.case_changed = True, True
                case eng.EndHandoff() if writes.case is not None:
                    writes.case.bot_resumed_at, writes.case.unread, writes.case_changed = now, True, True
                    writes.audit("handoff.ended_by_resident", {})
                case eng.RelayToCaseworker() | eng.EndHandoff():
                    pass  # no referral: nothing to tell
                case eng.RecordUnmet(category=category, reason=reason):
                    writes.audits.append(("need.unmet", None, {"category": category, "reason": reason}))
                case _:
                    return None
        return writes

    def _fast_referral(
        self, conn: Connection, writes: _FastWrites, who: Any, effect: eng.CreateReferral, now: datetime, on_duty: bool
    ) -> bool:
        """Open a referral (in memory, until `_fast_turn` inserts it) or raise the open one (locked there);
        False when the ORM path must: a web visitor's referral counts against its address, and a
        default contact preference may cancel check-ins."""
        if writes.case is None:
            if not self.can_text(who):
                return False
            writes.case = _new_case(who, effect, now, triage.is_repeat(conn, who.id, now))
            writes.opened = True
            writes.audit(
                "referral.created", {"category": effect.category, "reason": effect.reason} | {"urgent": effect.urgent}
            )
        else:
            triage.raise_open(writes.case, effect)
            writes.audit("referral.raised", {"reason": effect.reason})
        triage.mark_seen(writes.case, effect, now, on_duty)
        if _default_due(who, writes.case) is not None:
            return False
        writes.raised.append(effect)
        writes.case_changed = True
        return True

    def _handle_locked(
        self,
        s: Session,
        resident: Resident,
        channel: str,
        body: str,
        inbound_text: eng.Inbound,
        provider_sid: str | None,
        now: datetime,
        client: str | None = None,
    ) -> tuple[Handled, _Inputs | None]:
        """The ORM path: any turn, including ones that open referrals, opt out or answer a check-in."""
        first_contact = resident.last_seen_at is None
        inbound = Message(
            resident_id=resident.id,
            direction="in",
            channel=channel,
            kind="inbound",
            body=body,
            provider_sid=provider_sid,
            status=MessageStatus.RECEIVED,
            num_media=inbound_text.media_count,
            created_at=now,
            updated_at=now,
        )
        s.add(inbound)
        s.flush()
        resident.last_seen_at = now
        conv = s.scalar(_CONVERSATION, {"resident_id": resident.id})
        if conv is None:
            conv = ConversationSession(resident_id=resident.id, state={}, last_activity_at=now, recent_count=0)
            s.add(conv)
        referral = self._open_referral(s, resident.id)
        checkin = self._pending_checkin(s, resident.id, now)
        conv.open_referral_id, conv.checkin_id = referral.id if referral else None, checkin.id if checkin else None
        conv.recent_since, conv.recent_count = turns.count_text(conv.recent_since, conv.recent_count, now)
        if self._loop_guarded(
            resident, conv.recent_count, body, now, holding=self.engine.holding(conv.state or None, now)
        ):
            inbound.status = MessageStatus.LOOP_GUARD
            logs.event("sms.loop_guard", resident=resident.id)
            return Handled([]), None
        on_duty = anyone_on_duty(s, self.settings, now)
        asked_about = s.get(Referral, checkin.referral_id) if checkin is not None and checkin.referral_id else None
        ctx = replace(
            self._context(resident, referral, checkin.sent_at if checkin else None, now, first_contact, on_duty),
            campaign_codes=self._campaign_codes(s, resident, conv, now),
            checkin_about=asked_about.category if asked_about else None,
            checkin_crisis=bool(asked_about and asked_about.crisis_kind),
        )
        inputs = _Inputs(conv.state or None, inbound_text, ctx, channel)
        outcome = self.engine.step(inputs.state, inputs.inbound, ctx)
        if referral is not None:
            inbound.referral_id = referral.id
        handled = Handled([], outcome.options, on_duty=on_duty)
        self._apply(s, resident, inbound, referral, outcome.effects, now, on_duty, handled, client)
        conv.state, conv.last_activity_at = outcome.state, now
        conv.flow, conv.step = outcome.state.get("flow"), outcome.state.get("step")
        if outcome.effects:  # what the effects opened, closed or answered
            referral, checkin = self._open_referral(s, resident.id), self._pending_checkin(s, resident.id, now)
            conv.open_referral_id = referral.id if referral else None
            conv.checkin_id = checkin.id if checkin else None
        replies = [self.outbound.record_reply(s, resident, text, inbound, flush=False) for text in outcome.replies]
        s.flush()  # one INSERT for all the replies (and their ids)
        self._log_handled(provider_sid, resident.id, channel, len(replies), outcome.effects)
        handled.replies = [Reply(r.id, r.body or "") for r in replies]
        return handled, inputs

    @staticmethod
    def _log_handled(provider_sid: str | None, resident_id: int, channel: str, replies: int, effects: list) -> None:
        """The one log line of a text."""
        if logs.logger.isEnabledFor(logging.INFO):
            done = ",".join(type(e).__name__ for e in effects) or "-"
            logs.event(
                "message.handled",
                sid=provider_sid,
                resident=resident_id,
                channel=channel,
                replies=replies,
                effects=done,
            )

    def _context(
        self,
        resident: _Who,
        referral: _Case | None,
        checkin_sent_at: datetime | None,
        now: datetime,
        first_contact: bool,
        on_duty: bool,
    ) -> eng.Context:
        """What the engine needs to know: the resident, the open case, and who can answer them."""
        hours = self.settings.office_hours
        availability = eng.Availability(
            on_duty=on_duty,
            on_call_told=referral is not None and referral.on_call_told_at is not None,
            next_open=None if on_duty else self.workdays.next_open(now),
            office_days=tuple(sorted(hours.days)),
            office_opens=hours.opens,
            office_closes=hours.closes,
        )
        return eng.Context(
            now=now,
            opted_out=resident.opted_out_at is not None,
            language=resident.language,
            handoff_open=self._handoff_open(referral),
            referral_open=referral is not None,
            zip_code=resident.zip_code,
            checkin_sent_at=checkin_sent_at,
            idle_hours=self.settings.session_idle_hours,
            hold_hours=self.settings.crisis_hold_hours,
            first_contact=first_contact,
            can_text=self.can_text(resident),
            contact_preference=ContactPreference(resident.contact_preference or "any"),
            contact_chosen=resident.contact_chosen_at is not None,
            availability=availability,
        )

    def _campaign_codes(
        self, s: Session, resident: Resident, conv: ConversationSession, now: datetime
    ) -> frozenset[str]:
        """Active campaigns' codes, for a text that may start a conversation from a resident no campaign
        has reached yet (first touch wins); the engine reads them (never fuzzily)."""
        if resident.campaign_id is not None or not self.engine.may_start(
            conv.state or None, now, self.settings.session_idle_hours
        ):
            return frozenset()
        return campaigns.active_codes(s, now)

    @staticmethod
    def can_text(resident: _Who) -> bool:
        """A number the line may text: an SMS resident, or a web visitor who proved one by a code."""
        return resident.channel != "web" or resident.linked_resident_id is not None

    def _escalate(self, handled: Handled, inputs: _Inputs | None) -> None:
        """Urgent and nobody on duty: tell the person on call now, before the answer leaves, so that
        the answer can say so truthfully (the engine, run again, words its promise from that)."""
        if not handled.escalate or self.escalator is None or inputs is None:
            self._warn_unnotified(handled.new_urgent)
            return
        told = [referral_id for referral_id in handled.escalate if self.escalator(referral_id)]
        self._warn_unnotified([r for r in handled.new_urgent if r not in told])
        if not told:
            return
        who = replace(inputs.ctx.availability, on_call_told=True)
        again = self.engine.step(inputs.state, inputs.inbound, replace(inputs.ctx, availability=who))
        if len(again.replies) != len(handled.replies):
            return
        sent = [self.outbound.as_sent(text, by_sms=inputs.channel != "web") for text in again.replies]
        changed = [(reply.id, text) for reply, text in zip(handled.replies, sent, strict=False) if reply.body != text]
        if changed:
            messages = turns.messages  # Core: the ORM's session sync would compare the encrypted body
            with self.db.transaction() as s:
                for message_id, text in changed:
                    s.execute(
                        update(messages).where(messages.c.id == message_id).values(body=text, segments=segments(text))
                    )
            handled.replies = [Reply(r.id, t) for r, t in zip(handled.replies, sent, strict=False)]

    def _warn_unnotified(self, referral_ids: list[int]) -> None:
        """An urgent referral that told nobody (no one on duty, no text reached the person on call),
        logged once: here unless the scheduler will still escalate it (escalate_overdue warns then)."""
        if not referral_ids:
            return
        with self.db.sessions() as s:
            for referral_id in referral_ids:
                referral = s.get(Referral, referral_id)
                if referral is None or referral.notified_at is not None:
                    continue
                if referral.escalated_at is not None or not self.settings.escalation_phones:
                    log.warning("referral.notified_nobody referral=%s urgent=1", referral_id)

    # -- residents and state -------------------------------------------------------------

    def lock_resident(self, s: Session, channel: str, address: str, now: datetime) -> Resident:
        """Create the resident if new and lock the row, so one person's texts never interleave.
        A text from a number only ever finds the number's own record, never a web visitor's."""
        if channel in KEYED_CHANNELS:
            unique, match, values = "chat_key", Resident.chat_key == address, {"chat_key": address}
        else:
            unique, match = "phone_lookup", Resident.with_phone(address) & Resident.channel.not_in(KEYED_CHANNELS)
            values = {"phone": address, "phone_lookup": phone_lookup(address)}
        # Looked for before the insert: a lookup made under an older DATA_KEY (before rotate-key)
        # differs from the one a new row gets, so the insert alone would not see the resident.
        found = select(Resident).where(match).order_by(Resident.id).limit(1).with_for_update()
        if (resident := s.scalars(found).first()) is not None:
            return resident
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        s.execute(
            insert(Resident)
            .values(**values, channel=channel, created_at=now)
            .on_conflict_do_nothing(index_elements=[unique])
        )
        return s.scalars(found).one()

    def _may_guard(self, resident: Any, recent: int, now: datetime, *, holding: bool) -> bool:
        """Too many texts in a minute (a robot, a stuck phone), or still quiet after them. Never for a
        person in a crisis hold: someone in crisis may text many times a minute."""
        if resident.channel in UNGUARDED_CHANNELS or holding:
            return False
        quiet = resident.quiet_until is not None and now < resident.quiet_until
        return quiet or recent > self.settings.loop_guard_per_minute

    def _loop_guarded(self, resident: Resident, recent: int, body: str, now: datetime, *, holding: bool) -> bool:
        """Store but stay quiet for a while (see _may_guard)."""
        if not self._may_guard(resident, recent, now, holding=holding):
            return False
        if resident.quiet_until is None or now >= resident.quiet_until:
            resident.quiet_until = now + timedelta(minutes=self.settings.loop_guard_quiet_minutes)
        # Only a guarded text pays for these checks (the engine runs the crisis check itself anyway):
        # a person in danger is answered, and STOP works, whatever the rate.
        text = body[:MAX_ENGINE_TEXT]
        return self.engine.crisis.detect(text) is None and keywords.classify(text) is not keywords.Compliance.STOP

    @staticmethod
    def _open_referral(s: Session, resident_id: int) -> Referral | None:
        return s.scalar(_OPEN_REFERRAL, {"resident_id": resident_id})

    @staticmethod
    def _handoff_open(referral: _Case | None) -> bool:
        return referral is not None and referral.status != ReferralStatus.NEW and referral.bot_resumed_at is None

    @staticmethod
    def _pending_checkin(s: Session, resident_id: int, now: datetime) -> FollowUp | None:
        return s.scalar(_PENDING_CHECKIN, {"resident_id": resident_id, "since": now - CHECKIN_WAIT})

    # -- effects ---------------------------------------------------------------------------

    def _apply(
        self,
        s: Session,
        resident: Resident,
        inbound: Message,
        referral: Referral | None,
        effects: list[Any],
        now: datetime,
        on_duty: bool,
        handled: Handled,
        client: str | None = None,
    ) -> None:
        """Turn the engine's effects into rows; note in `handled` the referrals to notify after commit."""
        raised = handled.referrals
        for effect in effects:
            match effect:
                case eng.OptOut():
                    resident.opted_out_at = resident.opted_out_at or now
                    self._audit(s, "resident.opted_out", resident, now)
                case eng.OptIn():
                    resident.opted_out_at = None
                    self._forget_marker(s, resident)
                    self._audit(s, "resident.opted_in", resident, now)
                case eng.SetProfile():
                    now_known = (resident.language, resident.zip_code, resident.timezone)
                    resident.language, resident.zip_code, resident.timezone = _profile(now_known, effect)
                case eng.CreateReferral():
                    new = referral is None
                    referral = self._raise_referral(s, resident, referral, effect, now, on_duty, client)
                    inbound.referral_id = referral.id
                    raised.append(referral.id)
                    if effect.urgent and not on_duty and referral.on_call_told_at is None:
                        handled.escalate.append(referral.id)
                    if effect.urgent and new:
                        handled.new_urgent.append(referral.id)
                case eng.SetContactPreference(preference=preference):
                    resident.contact_chosen_at = now
                    self._set_preference(s, resident, preference, now)
                case eng.Erase():
                    handled.erase = resident.id
                case eng.ScheduleFollowUp(after=after, template=template):
                    s.add(
                        FollowUp(
                            resident_id=resident.id,
                            referral_id=referral.id if referral else None,
                            template=template,
                            due_at=now + after,
                            created_at=now,
                        )
                    )
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
                case eng.JoinCampaign(code=code):
                    campaigns.attribute(s, resident, code, now)
                case eng.ListeningAnswer(answer=answer):
                    self._listening_answer(s, resident, answer, now)

    def _raise_referral(
        self,
        s: Session,
        resident: Resident,
        referral: Referral | None,
        effect: eng.CreateReferral,
        now: datetime,
        on_duty: bool,
        client: str | None = None,
    ) -> Referral:
        """Open a referral, or raise the open one (a crisis makes it urgent and records its kind)."""
        if referral is None:
            tier = triage.new_referral_tier(s, self.settings, resident, client, now)
            repeat = triage.is_repeat(s, resident.id, now)
            referral = Referral(
                resident_id=resident.id,
                category=effect.category,
                reason=effect.reason,
                zip_code=effect.zip_code or resident.zip_code,
                urgent=effect.urgent,
                resource_ids=list(effect.resource_ids),
                created_at=now,
                tier=tier,
                repeat=repeat,
            )
            s.add(referral)
            s.flush()
            created = {"category": effect.category, "reason": effect.reason, "urgent": effect.urgent}
            self._audit(s, "referral.created", resident, now, referral, created)
        else:
            triage.raise_open(referral, effect)
            self._audit(s, "referral.raised", resident, now, referral, {"reason": effect.reason})
        triage.mark_seen(referral, effect, now, on_duty)
        if (default := _default_due(resident, referral)) is not None:
            self._set_preference(s, resident, default, now)
        return referral

    def _forget_marker(self, s: Session, resident: Resident) -> None:
        """START from a number that had opted out and erased its data: the line may text it again."""
        if resident.phone:
            marker = opt_out_marker(self.settings.secret_key, resident.phone)
            s.execute(delete(OptOutMarker).where(OptOutMarker.phone_lookup == marker))

    def _set_preference(self, s: Session, resident: Resident, preference: ContactPreference, now: datetime) -> None:
        """Record how we may reach them; "do not text first" cancels the check-ins still waiting."""
        resident.contact_preference = preference
        cancelled = 0
        if preference != ContactPreference.ANY:
            cancelled = (
                rows_changed(
                    s,
                    update(FollowUp)
                    .where(FollowUp.resident_id == resident.id, FollowUp.status == FollowUpStatus.PENDING)
                    .values(status=FollowUpStatus.CANCELLED),
                )
                or 0
            )
        self._audit(
            s,
            "resident.contact_preference",
            resident,
            now,
            detail={
                "preference": str(preference),
                "chosen": resident.contact_chosen_at == now,
                "checkins_cancelled": cancelled,
            },
        )

    def _checkin_answer(self, s: Session, resident: Resident, answer: str, now: datetime) -> list[int]:
        followup = self._pending_checkin(s, resident.id, now)
        if followup is None:
            return []
        followup.answer, followup.answered_at = answer, now
        referral = s.get(Referral, followup.referral_id) if followup.referral_id else None
        self._audit(s, "checkin.answered", resident, now, referral, {"answer": answer})
        if referral is None:
            return []
        if answer == Outcome.GOT_HELP:
            referral.status, referral.outcome, referral.closed_at = ReferralStatus.CLOSED, Outcome.GOT_HELP, now
            return []
        # not yet, or more help: the case goes back in front of a caseworker
        if referral.status == ReferralStatus.CLOSED:
            referral.status, referral.closed_at, referral.outcome = ReferralStatus.NEW, None, None
        referral.unread = True
        return [referral.id]

    def _listening_answer(self, s: Session, resident: Resident, answer: str | None, now: datetime) -> None:
        """Counted by ZIP and campaign as they were when answered; their own words stay in the thread only."""
        detail = {"answer": answer, "zip": resident.zip_code, "campaign": resident.campaign_id}
        self._audit(s, "listening.answered", resident, now, detail=detail)

    @staticmethod
    def _audit(
        s: Session,
        action: str,
        resident: Resident,
        now: datetime,
        referral: Referral | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        s.add(
            AuditEvent(
                at=now,
                action=action,
                resident_id=resident.id,
                referral_id=referral.id if referral else None,
                detail=detail or {},
            )
        )


def _new_case(who: _Who, effect: eng.CreateReferral, now: datetime, repeat: bool) -> turns.Case:
    """A referral the text opens, as the ORM path's `_raise_referral` makes one (a number's: trusted)."""
    return turns.Case(
        id=None,
        resident_id=who.id,
        status=ReferralStatus.NEW,
        category=effect.category,
        reason=effect.reason,
        zip_code=effect.zip_code or who.zip_code,
        urgent=effect.urgent,
        tier=triage.Tier.TRUSTED,
        resource_ids=list(effect.resource_ids),
        unread=True,
        created_at=now,
        queue_at=now,
        repeat=repeat,
    )


def _default_due(resident: _Who, case: triage.Case) -> ContactPreference | None:
    """The contact preference a referral sets until the resident answers "safe to text later?": do not
    text first after a crisis or in a guarded need (contact.default_for; the engine words its promises
    from the same rule). None when it changes nothing."""
    default = default_for(case.category, case.crisis_kind is not None)
    if resident.contact_chosen_at is None and resident.contact_preference == ContactPreference.ANY != default:
        return default
    return None


def _profile(known: _Known, effect: eng.SetProfile) -> _Known:
    """The resident's (language, ZIP, time zone) after a profile answer."""
    language, zip_code, tz = known
    if effect.zip_code:
        zip_code, tz = effect.zip_code, geo.zip_timezone(effect.zip_code) or tz
    return effect.language or language, zip_code, tz
