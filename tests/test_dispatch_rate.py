"""Sending at the channel's rate: the sender's type and rate, the token bucket, senders side by side."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import timedelta

import pytest
from conftest import PROGRAM_NUMBER, T0
from fault_twilio import ACCOUNT_SID, ScriptedTwilio, created, error
from sqlalchemy import insert, select

from bot import create_app
from bot.config import ConfigError, load_settings
from bot.messaging.dispatch import dispatch_due
from bot.messaging.outbound import SendResult, TwilioSender
from bot.messaging.rate import SenderType, TokenBucket, sender_type
from bot.storage.models import FollowUp, Message, Resident


class FakeTime:
    """A monotonic clock that moves only when something sleeps (or the test moves it)."""

    def __init__(self) -> None:
        self.now, self.slept = 100.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


# -- the sender's type and its rate ------------------------------------------------------------------


@pytest.mark.parametrize(
    "number, service, kind",
    [
        ("+18165550100", None, SenderType.LONG_CODE),
        ("+18885550100", None, SenderType.TOLL_FREE),
        ("+18335550100", None, SenderType.TOLL_FREE),
        ("+18195550100", None, SenderType.LONG_CODE),  # 819 is a Quebec area code, not toll-free
        ("72345", None, SenderType.SHORT_CODE),
        ("723456", None, SenderType.SHORT_CODE),
        ("+18165550100", "MG" + "1" * 32, SenderType.MESSAGING_SERVICE),
        (None, None, SenderType.LONG_CODE),
    ],
)
def test_the_sender_type_comes_from_the_number_or_the_messaging_service(number, service, kind):
    assert sender_type(number, service) == kind


@pytest.mark.parametrize(
    "extra, mps, concurrency",
    [
        ({"TWILIO_FROM_NUMBER": "+18165550100"}, 1, 8),
        ({"TWILIO_FROM_NUMBER": "+18775550100"}, 3, 8),
        ({"TWILIO_FROM_NUMBER": "72345"}, 100, 30),
        ({"TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32}, 100, 30),
        ({"TWILIO_FROM_NUMBER": "72345", "SENDER_MPS": "40", "SEND_CONCURRENCY": "12"}, 40, 12),
        ({"SENDER_MPS": "0.5"}, 0.5, 8),
    ],
)
def test_the_rate_defaults_by_sender_type_and_concurrency_keeps_up_with_it(env, extra, mps, concurrency):
    settings = load_settings({**env, **extra})
    assert (settings.sender_mps, settings.send_concurrency) == (mps, concurrency)


@pytest.mark.parametrize(
    "extra, says",
    [
        ({"SENDER_MPS": "fast"}, "SENDER_MPS must be texts a second"),
        ({"SENDER_MPS": "0"}, "SENDER_MPS must be texts a second"),
        ({"SENDER_MPS": "-3"}, "SENDER_MPS must be texts a second"),
        ({"SENDER_MPS": "nan"}, "SENDER_MPS must be texts a second"),
        ({"SENDER_MPS": "1e9"}, "SENDER_MPS must be texts a second"),
        ({"SEND_CONCURRENCY": "lots"}, "SEND_CONCURRENCY must be a whole number"),
        ({"SEND_CONCURRENCY": "0"}, "SEND_CONCURRENCY must be at least 1"),
        ({"SEND_CONCURRENCY": "65"}, "SEND_CONCURRENCY must be at most 64"),
    ],
)
def test_a_wrong_rate_or_concurrency_stops_start_up_with_one_line(env, extra, says):
    with pytest.raises(ConfigError, match=says) as caught:
        load_settings({**env, **extra})
    assert "\n" not in str(caught.value)


# -- the token bucket --------------------------------------------------------------------------------


def test_the_bucket_spaces_takers_at_the_rate_and_saves_up_one_token_only():
    t = FakeTime()
    bucket = TokenBucket(2, clock=t.clock, sleep=t.sleep)
    assert [bucket.take() for _ in range(4)] == [0, 0.5, 1.0, 1.5]  # each waits for its own slot
    t.now += 60  # idle a minute: one token saved, not 120 (a held-up sender never bursts to catch up)
    assert [bucket.take() for _ in range(2)] == [0, 0.5]
    assert t.slept == [0.5, 1.0, 1.5, 0.5]


def test_the_bucket_hands_each_token_to_one_thread():
    t = FakeTime()
    bucket = TokenBucket(10, clock=t.clock, sleep=t.sleep)
    waits: list[float] = []
    threads = [threading.Thread(target=lambda: waits.append(bucket.take())) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([i / 10 for i in range(20)])


def test_every_request_to_twilio_takes_a_token_retries_too(env):
    settings = load_settings({**env, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_FROM_NUMBER": PROGRAM_NUMBER})
    t = FakeTime()
    bucket = TokenBucket(settings.sender_mps, clock=t.clock, sleep=t.sleep)
    fake = ScriptedTwilio(error(429, 20429), created())
    sender = TwilioSender(settings, http_client=fake, sleep=lambda _s: None, bucket=bucket)
    assert sender.send("+18165550123", "hi", None).status == "queued"
    assert sender.send("+18165550124", "hi", None).status == "queued"
    assert len(fake.calls) == 3 and t.slept == [1.0, 2.0]  # a long code: one a second, each request its own


# -- senders side by side ----------------------------------------------------------------------------


class OverlapSender:
    """Counts the sends in flight at once. The first `hold` sends wait for each other, so the test
    knows `hold` ran side by side without timing anything."""

    name = "overlap"

    def __init__(self, hold: int) -> None:
        self.lock, self.in_flight, self.most = threading.Lock(), 0, 0
        self.barrier, self.hold, self.to = threading.Barrier(hold), hold, Counter[str]()

    def send(self, to: str, body: str, status_callback: str | None) -> SendResult:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.to[to] += 1
            sends = sum(self.to.values())
        try:
            if sends <= self.hold:
                self.barrier.wait(timeout=30)  # a safety net, not a measurement
        finally:
            with self.lock:
                self.in_flight -= 1
        return SendResult("queued", sid=f"SM{sends:032d}")


def due_follow_ups(rt, count: int, first: int = 0) -> None:
    """`count` new residents (numbers from `first` on), each with a check-in due a minute ago."""
    due = T0 - timedelta(minutes=1)
    with rt.db.transaction() as s:
        ids = s.scalars(
            insert(Resident).returning(Resident.id),
            [{"phone": f"+1816400{first + i:04d}", "channel": "sms", "created_at": due} for i in range(count)],
        ).all()
        s.execute(
            insert(FollowUp),
            [
                {"resident_id": rid, "template": "checkin", "due_at": due, "status": "pending", "created_at": due}
                for rid in ids
            ],
        )


@pytest.mark.parametrize("concurrency, due", [(4, 12), (4, 2), (1, 5)])
def test_a_pass_sends_side_by_side_never_more_than_send_concurrency_each_once(env, clock, concurrency, due):
    sender = OverlapSender(hold=min(concurrency, due))
    app = create_app(load_settings({**env, "SEND_CONCURRENCY": str(concurrency)}), clock=clock, sender=sender)
    rt = app.extensions["peaceline"]
    try:
        due_follow_ups(rt, due)
        done = dispatch_due(rt, T0)
        assert sender.most == min(concurrency, due)
        assert len(done) == due and {d.status for d in done} == {"sent"}
        assert len(sender.to) == due and set(sender.to.values()) == {1}
        assert [(d.due_at, d.id) for d in done] == sorted((d.due_at, d.id) for d in done)
        with rt.db.sessions() as s:
            assert Counter(s.scalars(select(FollowUp.status))) == {"sent": due}
            assert Counter(s.scalars(select(Message.status).where(Message.kind == "followup"))) == {"queued": due}
        assert dispatch_due(rt, T0) == []
    finally:
        rt.db.dispose()


def test_passes_reuse_the_senders_threads_and_leave_no_descriptor_open(env, clock):
    """A thread keeps its own descriptors (SQLite's writer lock) until it ends: new threads every
    pass would leak them, one tick after another."""
    app = create_app(load_settings({**env, "SEND_CONCURRENCY": "4"}), clock=clock, sender=OverlapSender(hold=1))
    rt = app.extensions["peaceline"]
    try:
        due_follow_ups(rt, 4)
        dispatch_due(rt, T0)
        threads, descriptors = threading.active_count(), len(os.listdir("/proc/self/fd"))
        for n in range(1, 6):
            due_follow_ups(rt, 4, first=4 * n)
            assert len(dispatch_due(rt, T0)) == 4
        assert threading.active_count() == threads
        assert len(os.listdir("/proc/self/fd")) == descriptors
    finally:
        rt.db.dispose()
