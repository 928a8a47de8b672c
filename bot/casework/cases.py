"""What a caseworker does to a referral: claim, reply, note, close, schedule a check-in.

Each change commits with its audit row. Errors are CaseError with words for the caseworker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.orm import Session, joinedload

from bot.casework import audit
from bot.conversation.contact import Outgoing
from bot.messaging.service import OPEN_REFERRAL, clean
from bot.messaging.triage import QUEUE_ORDER
from bot.runtime import Runtime
from bot.storage import turns
from bot.storage.db import rows_changed
from bot.storage.models import Caseworker, FollowUp, Message, Note, Referral, Resident
from bot.storage.statuses import FollowUpStatus, MessageStatus, Outcome, ReferralStatus

OUTCOMES = {
    Outcome.GOT_HELP: "Got help",
    Outcome.COULD_NOT_GET_HELP: "Could not get help",
    Outcome.NO_LONGER_NEEDED: "No longer needed",
    Outcome.COULD_NOT_REACH: "Could not reach them",
    Outcome.REFERRED_ELSEWHERE: "Referred elsewhere",
}
MAX_REPLY = 1600  # Twilio's limit for one message
MAX_NOTE = 5000
NOT_SENT = (MessageStatus.SKIPPED_OPTED_OUT, MessageStatus.FAILED, MessageStatus.HELD_CONTACT_PREFERENCE)
UNCERTAIN = (MessageStatus.UNKNOWN,)  # Twilio timed out or failed: the text may or may not have gone out
PAGE_SIZE = 50
Show = Literal["open", "mine", "closed"]


class CaseError(ValueError):
    """A change that cannot be made; the message is shown to the caseworker."""


@dataclass
class Thread:
    """Everything the thread page shows, loaded in one go."""

    referral: Referral
    messages: list[Message]
    notes: list[Note]
    followups: list[FollowUp]
    staff: dict[int, Caseworker]


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What a caseworker narrowed the queue to; the tab's totals are always counted without them."""

    urgent: bool = False
    need: str | None = None  # a category key
    language: str | None = None  # a language code

    def where(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.urgent:
            where.append(Referral.urgent.is_(True))
        if self.need:
            where.append(Referral.category == self.need)
        if self.language:
            where.append(Referral.resident.has(Resident.language == self.language))
        return where

    @property
    def active(self) -> bool:
        return bool(self.urgent or self.need or self.language)


@dataclass(frozen=True)
class Card:
    """What a queue card shows beyond the referral itself: its last text and how long it has waited."""

    last_message_at: datetime | None
    waiting_since: datetime | None  # None: a caseworker answered their last text (or it is closed)


@dataclass(frozen=True)
class Queue:
    """One page of a tab, with the tab's totals: nothing in the tab can be out of sight unnoticed."""

    referrals: list[Referral]
    page: int  # from 1
    pages: int
    total: int  # every referral in the tab, on any page
    urgent: int
    unread: int
    matching: int = 0  # those the filters let through (the total when there are none)
    cards: dict[int, Card] = field(default_factory=dict)  # by referral id

    @property
    def first(self) -> int:
        """The position of this page's first row in the whole tab, from 1."""
        return (self.page - 1) * PAGE_SIZE + 1 if self.referrals else 0


def queue(rt: Runtime, show: Show, me: int, page: int = 1, filters: Filters = Filters()) -> Queue:
    """A page of open referrals in triage order (tier, urgent, risk score: triage.py); or mine; or the latest
    closed. The totals count the whole tab; the filters narrow the rows and the pages."""
    where: list[ColumnElement[bool]]
    order: tuple[Any, ...]  # ORDER BY terms: columns and their .desc()
    if show == "closed":
        where, order = [Referral.status == ReferralStatus.CLOSED], (Referral.closed_at.desc(), Referral.id.desc())
    else:
        where, order = [Referral.status.in_(OPEN_REFERRAL)], QUEUE_ORDER
        if show == "mine":
            where.append(Referral.assigned_to_id == me)
    totals = select(
        func.count(Referral.id),
        func.coalesce(func.sum(case((Referral.urgent, 1), else_=0)), 0),
        func.coalesce(func.sum(case((Referral.unread, 1), else_=0)), 0),
    ).where(*where)
    with rt.db.sessions() as s:
        total, urgent, unread = s.execute(totals).one()
        narrowed = [*where, *filters.where()]
        matching = (s.scalar(select(func.count(Referral.id)).where(*narrowed)) or 0) if filters.active else total
        pages = max(1, math.ceil(matching / PAGE_SIZE))
        page = min(max(page, 1), pages)  # past the end (the tab shrank since): the last page
        rows = list(
            s.scalars(
                select(Referral)
                .options(joinedload(Referral.resident).joinedload(Resident.linked), joinedload(Referral.assigned_to))
                .where(*narrowed)
                .order_by(*order)
                .offset((page - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        )
        return Queue(rows, page, pages, total, urgent, unread, matching, _cards(s, rows))


def _cards(s: Session, referrals: list[Referral]) -> dict[int, Card]:
    """Each card's last text (either way) and since when it has waited for a caseworker, in one query."""
    last = select(
        Message.resident_id,
        func.max(Message.created_at),
        func.max(case((Message.direction == "in", Message.created_at))),
        func.max(case((Message.kind == "caseworker", Message.created_at))),
    ).where(Message.resident_id.in_(sorted({r.resident_id for r in referrals})), Message.kind != "notice")
    times = {row[0]: row[1:] for row in s.execute(last.group_by(Message.resident_id))}
    cards = {}
    for r in referrals:
        last_any, last_in, last_staff = times.get(r.resident_id, (None, None, None))
        if r.status == "closed":
            waiting = None
        elif last_staff is None:
            waiting = r.created_at  # nobody from the team has texted them yet
        else:
            waiting = last_in if last_in is not None and last_in > last_staff else None
        cards[r.id] = Card(last_any, waiting)
    return cards


def open_thread(rt: Runtime, referral_id: int, me: int) -> Thread:
    """Load the thread, mark it read and record that this caseworker saw it."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        referral = _referral(s, referral_id, lock=False)
        messages = list(
            s.scalars(
                select(Message)
                .where(Message.resident_id == referral.resident_id, Message.kind != "notice")  # notices went to staff
                .order_by(Message.created_at, Message.id)
            )
        )
        notes = list(s.scalars(select(Note).where(Note.referral_id == referral_id).order_by(Note.id)))
        followups = list(
            s.scalars(select(FollowUp).where(FollowUp.referral_id == referral_id).order_by(FollowUp.due_at))
        )
        staff = {c.id: c for c in s.scalars(select(Caseworker).order_by(Caseworker.name))}
        referral.unread = False
        audit.record(s, "thread.viewed", now, actor_id=me, resident_id=referral.resident_id, referral_id=referral_id)
    return Thread(referral, messages, notes, followups, staff)


def _referral(s: Session, referral_id: int, lock: bool = True) -> Referral:
    query = (
        select(Referral)
        .where(Referral.id == referral_id)
        .options(joinedload(Referral.resident).joinedload(Resident.linked), joinedload(Referral.assigned_to))
    )
    # FOR UPDATE OF referrals: PostgreSQL will not lock the nullable side of the joined rows
    referral = s.scalar(query.with_for_update(of=Referral) if lock else query)
    if referral is None:
        raise CaseError("There is no such referral.")
    return referral


# -- changing ------------------------------------------------------------------------------------


def _set_status(s: Session, referral: Referral, status: str, me: int, now: datetime, **detail: object) -> None:
    """Every status change goes through here, so every one is audited."""
    audit.record(
        s,
        "referral.status",
        now,
        actor_id=me,
        resident_id=referral.resident_id,
        referral_id=referral.id,
        **{"from": referral.status, "to": status, **detail},
    )
    referral.status = status


def claim(rt: Runtime, referral_id: int, me: int) -> None:
    now = rt.clock.now()
    with rt.db.transaction() as s:
        referral = _referral(s, referral_id)
        if referral.status != ReferralStatus.NEW:
            who = referral.assigned_to.name if referral.assigned_to else "someone"
            raise CaseError(f"{who} already has this referral.")
        _take(s, referral, me, now)


def _take(s: Session, referral: Referral, caseworker_id: int, now: datetime) -> None:
    referral.assigned_to_id, referral.claimed_at = caseworker_id, now
    if referral.status == ReferralStatus.NEW:
        _set_status(s, referral, ReferralStatus.CLAIMED, caseworker_id, now)


def reply(rt: Runtime, referral_id: int, me: int, text: str) -> Message:
    """Text the resident from the program's number; the first reply marks the referral contacted."""
    body = clean(text).strip()
    if not body:
        raise CaseError("Write a message first.")
    if len(body) > MAX_REPLY:
        raise CaseError(f"That is too long for one text ({len(body)} of {MAX_REPLY} characters).")
    with rt.db.sessions() as s:
        referral = _referral(s, referral_id, lock=False)
    if referral.status == ReferralStatus.CLOSED:
        raise CaseError("This referral is closed. Reopen it to reply.")
    msg = rt.outbound.send(referral.resident_id, body, Outgoing.CASEWORKER, referral_id=referral_id, caseworker_id=me)
    if msg.status in NOT_SENT + UNCERTAIN:
        return msg  # not (surely) a contact: the referral's status and contact time stay as they are
    now = rt.clock.now()
    with rt.db.transaction() as s:
        referral = _referral(s, referral_id)
        referral.bot_resumed_at = None  # the resident's next texts come to the caseworker again
        if referral.assigned_to_id is None:
            _take(s, referral, me, now)
        if referral.status in (ReferralStatus.NEW, ReferralStatus.CLAIMED):
            _set_status(s, referral, ReferralStatus.CONTACTED, me, now)
            referral.contacted_at = referral.contacted_at or now
    return msg


def add_note(rt: Runtime, referral_id: int, me: int, text: str) -> None:
    body = clean(text).strip()
    if not body:
        raise CaseError("Write a note first.")
    if len(body) > MAX_NOTE:
        raise CaseError(f"That note is too long ({len(body)} of {MAX_NOTE} characters).")
    now = rt.clock.now()
    with rt.db.transaction() as s:
        _referral(s, referral_id, lock=False)
        s.add(Note(referral_id=referral_id, caseworker_id=me, body=body, created_at=now))


def close(rt: Runtime, referral_id: int, me: int, outcome: str) -> int:
    """Close with an outcome and cancel the check-ins still waiting; returns how many were cancelled."""
    if outcome not in OUTCOMES:
        raise CaseError("Pick how it ended.")
    now = rt.clock.now()
    with rt.db.transaction() as s:
        referral = _referral(s, referral_id)
        if referral.status == ReferralStatus.CLOSED:
            raise CaseError("This referral is already closed.")
        _set_status(s, referral, ReferralStatus.CLOSED, me, now, outcome=outcome)
        referral.outcome, referral.closed_at = outcome, now
        return rows_changed(
            s,
            update(FollowUp)
            .where(FollowUp.referral_id == referral_id, FollowUp.status == FollowUpStatus.PENDING)
            .values(status=FollowUpStatus.CANCELLED),
        )


def reopen(rt: Runtime, referral_id: int, me: int) -> None:
    now = rt.clock.now()
    with rt.db.transaction() as s:
        referral = _referral(s, referral_id)
        if referral.status != ReferralStatus.CLOSED:
            raise CaseError("This referral is open.")
        back = (
            ReferralStatus.CONTACTED
            if referral.contacted_at
            else ReferralStatus.CLAIMED
            if referral.assigned_to_id
            else ReferralStatus.NEW
        )
        _set_status(s, referral, back, me, now)
        referral.outcome, referral.closed_at = None, None
        turns.note_open_referral(s.connection(), referral.resident_id, referral.id)


def assign(rt: Runtime, referral_id: int, me: int, caseworker_id: int) -> None:
    """An admin gives the referral to a caseworker."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        target = s.get(Caseworker, caseworker_id)
        if target is None or not target.active:
            raise CaseError("Pick an active caseworker.")
        referral = _referral(s, referral_id)
        audit.record(
            s,
            "referral.assigned",
            now,
            actor_id=me,
            resident_id=referral.resident_id,
            referral_id=referral_id,
            to=caseworker_id,
            before=referral.assigned_to_id,
        )
        referral.assigned_to_id, referral.claimed_at = caseworker_id, referral.claimed_at or now
        if referral.status == ReferralStatus.NEW:
            _set_status(s, referral, ReferralStatus.CLAIMED, me, now)


# -- check-ins ----------------------------------------------------------------------------------------


def followup_templates(rt: Runtime) -> tuple[str, ...]:
    return rt.engine.followup_templates


def schedule_followup(rt: Runtime, referral_id: int, me: int, template: str, day: str, at: str) -> FollowUp:
    """A check-in at a local date and time (PROGRAM_TIMEZONE); the dispatcher keeps to the sending window."""
    if template not in followup_templates(rt):
        raise CaseError("Pick a message.")
    try:
        local = datetime.combine(date.fromisoformat(day), time.fromisoformat(at), tzinfo=rt.settings.program_timezone)
    except ValueError:
        raise CaseError("Pick a date and a time.") from None
    now = rt.clock.now()
    if local <= now:
        raise CaseError("Pick a time in the future.")
    with rt.db.transaction() as s:
        referral = _referral(s, referral_id)
        if referral.status == ReferralStatus.CLOSED:
            raise CaseError("This referral is closed. Reopen it first.")
        if referral.resident.opted_out:
            raise CaseError("This person opted out of texts.")
        row = FollowUp(
            resident_id=referral.resident_id,
            referral_id=referral_id,
            template=template,
            due_at=local,
            status=FollowUpStatus.PENDING,
            created_by_id=me,
            created_at=now,
        )
        s.add(row)
        s.flush()
        audit.record(
            s,
            "followup.scheduled",
            now,
            actor_id=me,
            resident_id=referral.resident_id,
            referral_id=referral_id,
            followup=row.id,
            template=template,
        )
        return row


def cancel_followup(rt: Runtime, followup_id: int, me: int) -> int:
    """Cancel a check-in that has not gone out; returns its referral's id."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        row = s.get(FollowUp, followup_id, with_for_update=True)
        if row is None or row.referral_id is None:
            raise CaseError("There is no such check-in.")
        if row.status != FollowUpStatus.PENDING:
            raise CaseError("That check-in has already been handled.")
        row.status = FollowUpStatus.CANCELLED
        audit.record(
            s,
            "followup.cancelled",
            now,
            actor_id=me,
            resident_id=row.resident_id,
            referral_id=row.referral_id,
            followup=row.id,
        )
        return row.referral_id
