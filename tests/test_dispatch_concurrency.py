"""Several dispatchers at once, each with its own app and connections: every follow-up goes out once.

PostgreSQL (claims with FOR UPDATE SKIP LOCKED) needs TEST_DATABASE_URL; SQLite (claims under the
write lock that BEGIN IMMEDIATE takes) runs everywhere.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from datetime import timedelta

import pytest
from conftest import T0
from sqlalchemy import func, insert, select

from bot import create_app
from bot.clock import FrozenClock
from bot.messaging.dispatch import BATCH, dispatch_due
from bot.storage.models import FollowUp, Message, Resident


def seed(rt, count: int) -> set[int]:
    """`count` residents with one check-in each, due a minute ago; returns the follow-up ids."""
    due = T0 - timedelta(minutes=1)
    with rt.db.transaction() as s:
        s.execute(
            insert(Resident),
            [
                {
                    "phone": f"+1816300{i:04d}",
                    "channel": "sms",
                    "created_at": due,
                    "language": "es" if i % 3 == 0 else "en",
                }
                for i in range(count)
            ],
        )
        residents = list(s.scalars(select(Resident.id)))
        s.execute(
            insert(FollowUp),
            [
                {
                    "resident_id": rid,
                    "template": "checkin",
                    "due_at": due,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": due,
                }
                for rid in residents
            ],
        )
        return set(s.scalars(select(FollowUp.id)))


def run_dispatchers(settings, count: int, limit: int) -> list[list[int]]:
    """`count` dispatchers in threads, each with its own app (engine, pool, runtime), released together;
    each calls dispatch_due until it finds nothing. Returns the follow-up ids each one handled."""
    apps = [create_app(settings, clock=FrozenClock(T0)) for _ in range(count)]
    start = threading.Barrier(count)
    handled: list[list[int]] = [[] for _ in range(count)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        rt = apps[i].extensions["peaceline"]
        try:
            start.wait(timeout=60)
            while done := dispatch_due(rt, T0, limit=limit):
                assert {d.status for d in done} == {"logged"}
                handled[i] += [d.id for d in done]
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)
        finally:
            rt.db.dispose()

    threads = [threading.Thread(target=work, args=(i,), name=f"dispatcher-{i}") for i in range(count)]
    # Each dispatcher mostly waits on its database; a short GIL switch interval lets a thread whose
    # answer came back run at once instead of queueing behind the others (the "convoy" effect).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads), "a dispatcher hung"
    if errors:
        raise errors[0]
    return handled


def assert_each_sent_exactly_once(rt, ids: set[int], handled: list[list[int]]) -> None:
    everything = [fid for part in handled for fid in part]
    assert len(everything) == len(set(everything)), "a follow-up was handled by two dispatchers"
    assert set(everything) == ids
    with rt.db.sessions() as s:
        rows = s.execute(select(FollowUp.status, FollowUp.attempts, FollowUp.message_id)).all()
        assert Counter((status, attempts) for status, attempts, _ in rows) == {("logged", 1): len(ids)}
        linked = [message_id for *_, message_id in rows]
        assert None not in linked and len(set(linked)) == len(ids)
        per_resident = Counter(s.scalars(select(Message.resident_id).where(Message.kind == "followup")))
        assert len(per_resident) == len(ids) and set(per_resident.values()) == {1}
        statuses = s.execute(
            select(Message.status, func.count()).where(Message.kind == "followup").group_by(Message.status)
        ).all()
        assert dict(statuses) == {"logged": len(ids)}
        assert set(s.scalars(select(Message.id).where(Message.kind == "followup"))) == set(linked)


# The claim size the scheduler uses, and a larger one: a claim of several rows must not overlap either.
LIMITS = [pytest.param(BATCH, id="batch"), pytest.param(25, id="claims-of-25")]


@pytest.mark.postgres
@pytest.mark.parametrize("limit", LIMITS)
def test_four_dispatchers_on_postgresql_send_each_follow_up_once(is_postgres, settings, rt, limit):
    if not is_postgres:
        pytest.skip("needs PostgreSQL (FOR UPDATE SKIP LOCKED): set TEST_DATABASE_URL=postgresql+psycopg://…")
    ids = seed(rt, 1000)
    handled = run_dispatchers(settings, 4, limit=limit)
    assert_each_sent_exactly_once(rt, ids, handled)
    assert sum(1 for part in handled if part) >= 2, "the dispatchers did not run side by side"


@pytest.mark.parametrize("limit", LIMITS)
def test_two_dispatchers_on_sqlite_send_each_follow_up_once(is_postgres, settings, rt, limit):
    if is_postgres:
        pytest.skip("the SQLite claim (under BEGIN IMMEDIATE's write lock); PostgreSQL has its own test")
    ids = seed(rt, 200)
    handled = run_dispatchers(settings, 2, limit=limit)
    assert_each_sent_exactly_once(rt, ids, handled)
