"""Follow-ups: rows sent once, inside the window, never to an opted-out number; `send-due`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import T0
from sqlalchemy import func, select

from bot.cli import main
from bot.messaging.dispatch import STUCK_AFTER, dispatch_due, next_window_start
from bot.storage.models import FollowUp, Message, Resident


@pytest.fixture
def resident_id(phone, rt) -> int:
    phone.text("hi")
    with rt.db.sessions() as s:
        return s.scalars(select(Resident)).one().id


def add_followup(rt, resident_id: int, due_in: timedelta = timedelta(0), **values) -> int:
    with rt.db.transaction() as s:
        row = FollowUp(resident_id=resident_id, template="checkin", due_at=rt.clock.now() + due_in, **values)
        s.add(row)
        s.flush()
        return row.id


def followup(rt, followup_id: int) -> FollowUp:
    with rt.db.sessions() as s:
        return s.get(FollowUp, followup_id)


def test_a_due_follow_up_is_sent_once_and_recorded_like_any_text(rt, resident_id):
    fid = add_followup(rt, resident_id)
    first, again = dispatch_due(rt), dispatch_due(rt)
    assert [d.status for d in first] == ["logged"] and again == []
    row = followup(rt, fid)
    assert row.status == "logged" and row.sent_at == T0 and row.message_id
    with rt.db.sessions() as s:
        msg = s.get(Message, row.message_id)
    assert msg.kind == "followup" and msg.body == row.body and "checking in" in msg.body


def test_the_follow_up_text_is_discreet(rt, resident_id):
    add_followup(rt, resident_id)
    body = dispatch_due(rt)[0].body.lower()
    for word in ("food", "rent", "eviction", "abuse", "lawyer", "rehab", "shelter", "court"):
        assert word not in body


def test_not_yet_due_is_left_alone(rt, resident_id):
    add_followup(rt, resident_id, due_in=timedelta(hours=1))
    assert dispatch_due(rt) == []


def test_an_opted_out_resident_is_skipped_and_the_row_says_so(rt, resident_id, phone):
    phone.text("STOP")
    fid = add_followup(rt, resident_id)
    assert [d.status for d in dispatch_due(rt)] == ["skipped_opted_out"]
    assert followup(rt, fid).status == "skipped_opted_out"
    with rt.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.kind == "followup")) == 0


def test_quiet_hours_hold_the_text_until_the_window_opens_in_the_residents_zone(rt, resident_id, clock):
    clock.set(T0.replace(hour=3))  # 21:00 the evening before in Kansas City
    fid = add_followup(rt, resident_id)
    assert [d.status for d in dispatch_due(rt)] == ["held_quiet_hours"]
    row = followup(rt, fid)
    assert row.status == "pending" and row.due_at == T0.replace(hour=15)  # 09:00 CST
    clock.set(T0.replace(hour=15))
    assert [d.status for d in dispatch_due(rt)] == ["logged"]


def test_the_window_uses_the_residents_own_time_zone(rt, resident_id, clock):
    with rt.db.transaction() as s:
        s.get(Resident, resident_id).timezone = "America/Los_Angeles"
    clock.set(T0.replace(hour=15, minute=30))  # 09:30 in Kansas City, 07:30 in Los Angeles
    add_followup(rt, resident_id)
    assert [d.status for d in dispatch_due(rt)] == ["held_quiet_hours"]


def test_window_edges():
    from datetime import time
    from zoneinfo import ZoneInfo

    tz, window = ZoneInfo("America/Chicago"), (time(9), time(20))
    assert next_window_start(T0, tz, window) is None
    assert next_window_start(T0.replace(hour=2), tz, window) == T0.replace(hour=15)
    assert next_window_start(T0.replace(hour=14, minute=59), tz, window) == T0.replace(hour=15)


def test_a_claim_left_by_a_dead_process_is_marked_unknown_never_resent(rt, resident_id, clock):
    fid = add_followup(rt, resident_id, status="sending", claimed_at=T0)
    clock.set(T0 + STUCK_AFTER + timedelta(seconds=1))
    assert dispatch_due(rt) == []
    assert followup(rt, fid).status == "unknown"


def test_send_due_json_prints_the_contract(runner, rt, resident_id, env, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    fid = add_followup(rt, resident_id)
    result = runner.invoke(main, ["send-due", "--now", "2026-12-01T16:30:00", "--json"])
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.output)
    assert set(item) == {"id", "to", "status", "body", "due_at"}
    assert item["id"] == fid and item["status"] == "logged"
    assert item["to"] == "+1816•••0123" and item["due_at"] == "2026-12-01T16:00:00+00:00"
    again = runner.invoke(main, ["send-due", "--now", "2026-12-01T16:31:00Z", "--json"])
    assert json.loads(again.output) == []


def test_send_due_refuses_a_bad_now(runner):
    result = runner.invoke(main, ["send-due", "--now", "tomorrow"])
    assert result.exit_code == 2 and "ISO 8601" in result.output
