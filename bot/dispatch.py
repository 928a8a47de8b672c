"""Sends due follow-ups: claim each row once, respect opt-outs and the sending window."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import logs
from .models import FollowUp, Resident
from .phones import mask
from .runtime import Runtime

BATCH = 200
STUCK_AFTER = timedelta(minutes=5)  # a claim older than this died with its process
MAX_ATTEMPTS = 5
FOLLOWUP_STATUS = {"queued": "sent", "accepted": "sent", "sending": "sent", "sent": "sent",
                   "delivered": "sent", "logged": "logged", "failed": "failed", "unknown": "unknown",
                   "skipped_opted_out": "skipped_opted_out", "undelivered": "failed"}


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


def claim(s: Session, now: datetime, limit: int, postgres: bool) -> list[FollowUp]:
    """Take due rows for this process only: SKIP LOCKED on PostgreSQL, the write lock on SQLite."""
    query = (select(FollowUp).where(FollowUp.status == "pending", FollowUp.due_at <= now)
             .order_by(FollowUp.due_at, FollowUp.id).limit(limit))
    if postgres:
        query = query.with_for_update(skip_locked=True)
    rows = list(s.scalars(query))
    for row in rows:
        row.status, row.claimed_at, row.attempts = "sending", now, row.attempts + 1
    return rows


def review_stuck(rt: Runtime, now: datetime) -> int:
    """Claims whose process died mid-send may have gone out: mark them for review, never resend."""
    with rt.db.transaction() as s:
        result = s.execute(update(FollowUp).where(FollowUp.status == "sending",
                                                  FollowUp.claimed_at < now - STUCK_AFTER)
                           .values(status="unknown"))
        return result.rowcount or 0


def dispatch_due(rt: Runtime, now: datetime | None = None, limit: int = BATCH) -> list[Dispatched]:
    """One pass: send every due follow-up once and say what happened to each."""
    now = now or rt.clock.now()
    review_stuck(rt, now)
    done: list[Dispatched] = []
    while True:
        with rt.db.transaction() as s:
            claimed = [(f.id, f.resident_id, f.referral_id, f.template, f.due_at)
                       for f in claim(s, now, limit, rt.db.dialect == "postgresql")]
        done += [_send_one(rt, now, *row) for row in claimed]
        if len(claimed) < limit:
            return done


def _send_one(rt: Runtime, now: datetime, followup_id: int, resident_id: int, referral_id: int | None,
              template: str, due_at: datetime) -> Dispatched:
    with rt.db.sessions() as s:
        resident = s.get(Resident, resident_id)
        phone, lang, opted_out = resident.phone, resident.language or "en", resident.opted_out
        tz = ZoneInfo(resident.timezone) if resident.timezone else rt.settings.program_timezone
    report = lambda status, body=None: Dispatched(  # noqa: E731 - one shape for every branch
        followup_id, mask(phone), status, body, due_at.isoformat())
    if opted_out:
        _finish(rt, followup_id, status="skipped_opted_out")
        return report("skipped_opted_out")
    if (opens := next_window_start(now, tz, rt.settings.send_window)) is not None:
        _finish(rt, followup_id, status="pending", due_at=opens)
        return report("held_quiet_hours")
    body = rt.engine.text(template, lang)
    msg = rt.outbound.send(resident_id, body, "followup", referral_id=referral_id)
    status = FOLLOWUP_STATUS.get(msg.status, "unknown")
    _finish(rt, followup_id, status=status, body=body, sent_at=now, message_id=msg.id)
    logs.event("followup.dispatched", followup=followup_id, status=status)
    return report(status, body)


def _finish(rt: Runtime, followup_id: int, **values: object) -> None:
    with rt.db.transaction() as s:
        s.execute(update(FollowUp).where(FollowUp.id == followup_id).values(**values))

