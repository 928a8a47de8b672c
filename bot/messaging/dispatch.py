"""Sends due follow-ups: claim each row once, respect opt-outs and the sending window."""

from __future__ import annotations

from concurrent.futures import wait
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session, aliased

from bot import logs
from bot.conversation.contact import Outgoing
from bot.messaging.phones import mask
from bot.runtime import Runtime
from bot.storage import turns
from bot.storage.db import rows_changed
from bot.storage.models import Base, FollowUp, Message, Resident
from bot.storage.statuses import FollowUpStatus, MessageStatus

# Rows claimed per transaction: one, just before it is sent. A process killed mid-pass then strands
# only the row it was sending (review_stuck marks it `unknown`), never rows it had not started.
BATCH = 1
STUCK_AFTER = timedelta(minutes=5)  # a claim older than this died with its process
FOLLOWUP_STATUS: dict[str, FollowUpStatus] = {
    MessageStatus.QUEUED: FollowUpStatus.SENT,
    MessageStatus.ACCEPTED: FollowUpStatus.SENT,
    MessageStatus.SENDING: FollowUpStatus.SENT,
    MessageStatus.SENT: FollowUpStatus.SENT,
    MessageStatus.DELIVERED: FollowUpStatus.SENT,
    MessageStatus.LOGGED: FollowUpStatus.LOGGED,
    MessageStatus.FAILED: FollowUpStatus.FAILED,
    MessageStatus.UNKNOWN: FollowUpStatus.UNKNOWN,
    MessageStatus.SKIPPED_OPTED_OUT: FollowUpStatus.SKIPPED_OPTED_OUT,
    MessageStatus.UNDELIVERED: FollowUpStatus.FAILED,
    MessageStatus.HELD_CONTACT_PREFERENCE: FollowUpStatus.HELD_CONTACT_PREFERENCE,
}


@dataclass(frozen=True)
class Dispatched:
    id: int
    to: str
    status: str
    body: str | None
    due_at: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def next_window_start(now: datetime, tz: ZoneInfo, window: tuple) -> datetime | None:
    """None when `now` is inside the window, else the next moment it opens (UTC)."""
    local = now.astimezone(tz)
    if window[0] <= local.time() < window[1]:
        return None
    day = local.date() if local.time() < window[0] else local.date() + timedelta(days=1)
    return datetime.combine(day, window[0], tzinfo=tz).astimezone(now.tzinfo)


# Built once: a plain UPDATE by primary key, bypassing the ORM's bulk-update machinery.
_followups = Base.metadata.tables[FollowUp.__tablename__]
_STORE_SENT = (
    update(_followups)
    .where(_followups.c.id == bindparam("followup_id"))
    .values({c: bindparam(f"new_{c}") for c in ("status", "body", "sent_at", "message_id")})
)


# Due rows with what sending needs to know about each resident, oldest first (one statement).
# Ordered by due_at alone, which ix_follow_ups_status_due gives as it is read, so LIMIT stops at
# the first rows; "due_at, id" made every claim sort every pending row (11 ms a claim at 10,000).
# A web visitor's check-ins go to the number they proved (its own record), shown masked in the report.
_Linked = aliased(Resident)
_DUE = (
    select(
        FollowUp.id,
        FollowUp.resident_id,
        FollowUp.referral_id,
        FollowUp.template,
        FollowUp.due_at,
        Resident.phone,
        Resident.language,
        Resident.opted_out_at,
        Resident.timezone,
        _Linked.phone.label("linked_phone"),
    )
    .join(Resident, Resident.id == FollowUp.resident_id)
    .outerjoin(_Linked, _Linked.id == Resident.linked_resident_id)
    .where(FollowUp.status == FollowUpStatus.PENDING, FollowUp.due_at <= bindparam("now"))
    .order_by(FollowUp.due_at)
    .limit(bindparam("limit"))
)
_DUE_SKIP_LOCKED = _DUE.with_for_update(skip_locked=True, of=FollowUp)  # PostgreSQL; not the residents
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


@dataclass(frozen=True)
class Due:
    """A claimed follow-up with what sending it needs to know about the resident."""

    id: int
    resident_id: int
    referral_id: int | None
    template: str
    due_at: datetime
    phone: str | None
    language: str
    opted_out: bool
    timezone: str | None


def claim(s: Session, now: datetime, limit: int, postgres: bool) -> list[Due]:
    """Take due rows for this process only: the SELECT skips rows another process holds (FOR UPDATE
    SKIP LOCKED on PostgreSQL; SQLite's write lock serialises claims) and the UPDATE marks them
    `sending` only if they are still pending. Two statements, not `id IN (subquery)`: PostgreSQL may
    run a LIMIT … SKIP LOCKED subquery once per row it updates, and so claim every due row."""
    if postgres:
        # The claim's commit need not wait for its own disk flush: nothing leaves before the send's
        # attempt commits, synchronously, later in the same log, which makes this claim durable too.
        # A crash before then loses the claim with nothing sent, and the row is simply due again.
        s.execute(_ASYNC_COMMIT)
    due = s.execute(_DUE_SKIP_LOCKED if postgres else _DUE, {"now": now, "limit": limit}).all()
    if not due:
        return []
    taken = set(
        s.scalars(
            update(FollowUp)
            .where(FollowUp.id.in_([row.id for row in due]), FollowUp.status == FollowUpStatus.PENDING)
            .values(status=FollowUpStatus.SENDING, claimed_at=now, attempts=FollowUp.attempts + 1)
            .returning(FollowUp.id)
            .execution_options(synchronize_session=False)
        )
    )
    return [
        Due(
            row.id,
            row.resident_id,
            row.referral_id,
            row.template,
            row.due_at,
            row.linked_phone or row.phone,
            row.language or "en",
            row.opted_out_at is not None,
            row.timezone,
        )
        for row in sorted(due, key=lambda r: (r.due_at, r.id))
        if row.id in taken
    ]


def review_stuck(rt: Runtime, now: datetime) -> int:
    """Claims whose process died mid-send may have gone out: mark them for review, never resend."""
    with rt.db.transaction() as s:
        return rows_changed(
            s,
            update(FollowUp)
            .where(FollowUp.status == FollowUpStatus.SENDING, FollowUp.claimed_at < now - STUCK_AFTER)
            .values(status=FollowUpStatus.UNKNOWN),
        )


def due_count(rt: Runtime, now: datetime, most: int) -> int:
    """How many follow-ups are due, counting no further than `most`."""
    due = select(FollowUp.id).where(FollowUp.status == FollowUpStatus.PENDING, FollowUp.due_at <= now).limit(most)
    with rt.db.sessions() as s:
        return s.scalar(select(func.count()).select_from(due.subquery())) or 0


def dispatch_due(rt: Runtime, now: datetime | None = None, limit: int = BATCH) -> list[Dispatched]:
    """One pass: send every due follow-up once and say what happened to each, oldest first.
    Up to SEND_CONCURRENCY senders work side by side, each claiming, sending and finishing one row
    at a time as `_drain` does alone; the sender's token bucket keeps them inside SENDER_MPS."""
    now = now or rt.clock.now()
    review_stuck(rt, now)
    senders = due_count(rt, now, rt.settings.send_concurrency)
    if senders <= 1:
        done = _drain(rt, now, limit)
    else:
        parts = [rt.senders.submit(_drain, rt, now, limit) for _ in range(senders)]
        wait(parts)  # every sender finishes its row before a failure is raised
        done = [d for part in parts for d in part.result()]
    return sorted(done, key=lambda d: (d.due_at, d.id))


def _drain(rt: Runtime, now: datetime, limit: int) -> list[Dispatched]:
    """Claim, send and finish until nothing due is left (a claim of `limit` rows per transaction)."""
    done: list[Dispatched] = []
    while True:
        with rt.db.transaction() as s:
            claimed = claim(s, now, limit, rt.db.dialect == "postgresql")
        done += [_send_one(rt, now, row) for row in claimed]
        if len(claimed) < limit:
            return done


def _send_one(rt: Runtime, now: datetime, due: Due) -> Dispatched:
    report = lambda status, body=None: Dispatched(  # noqa: E731 - one shape for every branch
        due.id, mask(due.phone), status, body, due.due_at.isoformat()
    )
    if due.opted_out:
        _finish(rt, due.id, status=FollowUpStatus.SKIPPED_OPTED_OUT)
        return report(FollowUpStatus.SKIPPED_OPTED_OUT)
    if due.phone is None:  # a web visitor who proved no number (or a purged one): no text can go
        _finish(rt, due.id, status=FollowUpStatus.SKIPPED_NO_NUMBER)
        return report(FollowUpStatus.SKIPPED_NO_NUMBER)
    tz = ZoneInfo(due.timezone) if due.timezone else rt.settings.program_timezone
    if (opens := next_window_start(now, tz, rt.settings.send_window)) is not None:
        _finish(rt, due.id, status=FollowUpStatus.PENDING, due_at=opens)
        return report("held_quiet_hours")
    body = rt.engine.text(due.template, due.language)

    def record(s: Session, msg: Message) -> None:  # in the transaction that stores the send's outcome
        status = FOLLOWUP_STATUS.get(msg.status, "unknown")
        s.execute(
            _STORE_SENT,
            {
                "followup_id": due.id,
                "new_status": status,
                "new_body": body,
                "new_sent_at": now,
                "new_message_id": msg.id,
            },
        )
        if status in turns.CHECKIN_SENT:  # its answer is read as such
            turns.note_checkin(s.connection(), due.resident_id, due.id)

    msg = rt.outbound.send(due.resident_id, body, Outgoing.FOLLOWUP, referral_id=due.referral_id, on_recorded=record)
    status = FOLLOWUP_STATUS.get(msg.status, FollowUpStatus.UNKNOWN)
    logs.event("followup.dispatched", followup=due.id, status=status)
    return report(status, body)


def _finish(rt: Runtime, followup_id: int, **values: object) -> None:
    with rt.db.transaction() as s:
        s.execute(update(FollowUp).where(FollowUp.id == followup_id).values(**values))
