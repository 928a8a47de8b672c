"""Faults, for real: kill -9 under load and mid-dispatch, the database going away, Twilio misbehaving.

The first two run `peaceline serve` / `peaceline send-due` as child processes and SIGKILL their
whole process group; the database test points the app at a TCP forwarder it stops and starts;
the Twilio tests put an injected `HttpClient` under the real twilio library. Only 127.0.0.1 is
ever contacted.
"""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import requests
from conftest import PROGRAM_NUMBER, T0, Phone, sign, twiml_bodies
from fault_proxy import TcpProxy
from fault_server import Process, Server, child_env, fresh_database, post_form, postgres_admin_url, run_cli
from fault_twilio import ACCOUNT_SID, ScriptedTwilio, created, error
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from staff_helpers import Staff, add_caseworker, fast_argon2, open_referral  # noqa: F401 (autouse fixture)

from bot import create_app
from bot.clock import FrozenClock
from bot.config import load_settings
from bot.messaging.dispatch import STUCK_AFTER, claim, dispatch_due
from bot.messaging.outbound import TwilioSender
from bot.storage.migrate import upgrade
from bot.storage.models import ConversationSession, FollowUp, Message, Referral, Resident

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(not postgres_admin_url(), reason="TEST_DATABASE_URL is not PostgreSQL"),
    ),
]


# -- kill -9 the server while texts are coming in ------------------------------------------------------

MENU, FOOD, ZIP = "MENU", "2", "64124"
SAYS = {"menu": "Reply with a number", "ask_zip": "ZIP code", "places": "Places with food"}
RESIDENTS = 12


@dataclass
class Conversation:
    """One resident's texts and what each answer must be, given the step the last answer left."""

    number: str
    texts: list[str]
    step: str = "start"
    zip_known: bool = False
    answered: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (sid, text, replies)
    refused: list[tuple[str, object]] = field(default_factory=list)  # (sid, status or error) before a 200
    wrong: list[str] = field(default_factory=list)

    def expect(self, text: str) -> str:
        """The answer the saved step implies, and the step it leaves."""
        if text == MENU:
            self.step = "intake/menu"
            return SAYS["menu"]
        if text == FOOD and self.step == "intake/menu":
            self.step = "closing/person" if self.zip_known else "food/zip"
            return SAYS["places"] if self.zip_known else SAYS["ask_zip"]
        if text == ZIP and self.step == "food/zip":
            self.step, self.zip_known = "closing/person", True
            return SAYS["places"]
        raise AssertionError(f"the script sends {text!r} at step {self.step}")

    def next_text(self) -> str:
        return FOOD if self.step == "intake/menu" else MENU


def script(i: int) -> list[str]:
    """Menu, food, ZIP, then back to the menu and food again: each answer depends on the saved step."""
    return [MENU, FOOD, ZIP] + [MENU, FOOD] * (2 + i % 3) + ([MENU] if i % 2 else [])


def text_until_answered(port: int, conv: Conversation, text: str, deadline: float, progress: list) -> None:
    """Send one text and, like Twilio, send the very same request again until it gets a 200."""
    params = Phone(None, conv.number).payload(text)
    signature = sign("/sms", params)
    while True:
        try:
            status, body = post_form(port, "/sms", params, signature, timeout=30)
        except (OSError, http.client.HTTPException) as exc:
            status, body = None, type(exc).__name__
        if status == 200:
            break
        conv.refused.append((params["MessageSid"], status if status is not None else body))
        if time.monotonic() > deadline:
            raise AssertionError(f"{params['MessageSid']} never got a 200")
        time.sleep(0.05)
    replies = twiml_bodies(body.decode())
    conv.answered.append((params["MessageSid"], text, replies))
    marker = conv.expect(text)
    if not any(marker in r for r in replies):
        conv.wrong.append(f"{conv.number} sent {text!r} and got {replies!r}, expected {marker!r}")
    progress.append(1)


@pytest.mark.parametrize("kind", DATABASES)
def test_kill_9_under_load_loses_nothing_doubles_nothing_and_conversations_continue(kind, tmp_path):
    conversations = [Conversation(f"+1816555{200 + i:04d}", script(i)) for i in range(RESIDENTS)]
    total = sum(len(c.texts) for c in conversations)
    progress: list[int] = []
    with fresh_database(kind, tmp_path) as url:
        env = child_env(url, tmp_path / "instance", LOOP_GUARD_PER_MINUTE="100000")
        first = Server(env, tmp_path / "serve-1.log")
        second = None
        try:
            first.wait_ready()
            deadline = time.monotonic() + 120
            failures: list[BaseException] = []

            def run(conv: Conversation) -> None:
                try:
                    for t in conv.texts:
                        text_until_answered(first.port, conv, t, deadline, progress)
                except BaseException as exc:
                    failures.append(exc)

            threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in conversations]
            for t in threads:
                t.start()
            while len(progress) < total // 3 and time.monotonic() < deadline and not failures:
                time.sleep(0.005)
            assert len(progress) < total, "the load finished before the kill; send more texts"
            first.kill()  # SIGKILL to the master and both workers, mid-load
            time.sleep(0.3)
            second = Server(env, tmp_path / "serve-2.log", port=first.port)
            second.wait_ready()
            for t in threads:
                t.join(timeout=max(1.0, deadline - time.monotonic()))
            assert not failures, failures
            assert all(not t.is_alive() for t in threads), "a resident's texts never all got a 200"

            wrong = [w for c in conversations for w in c.wrong]
            assert not wrong, "\n".join(wrong)
            refused = [r for c in conversations for r in c.refused]
            assert refused, "no text was in flight or refused while the server was down: the kill proved nothing"
            # a live server never refused a text: only the dead one failed to answer
            assert {status for _, status in refused if isinstance(status, int)} == set(), refused

            # every resident's next text gets the answer its saved step implies, after the restart
            for conv in conversations:
                text = conv.next_text()
                text_until_answered(second.port, conv, text, time.monotonic() + 30, progress)
                assert not conv.wrong, conv.wrong
        finally:
            for server in (first, second):
                if server is not None:
                    server.kill()

        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(Message.provider_sid, Message.id, Message.resident_id).where(Message.direction == "in")
                ).all()
                replies = dict(
                    conn.execute(
                        select(Message.in_reply_to_id, func.count())
                        .where(Message.direction == "out")
                        .group_by(Message.in_reply_to_id)
                    ).all()
                )
                steps = {
                    r.resident_id: f"{r.flow}/{r.step}"
                    for r in conn.execute(
                        select(ConversationSession.resident_id, ConversationSession.flow, ConversationSession.step)
                    )
                }
        finally:
            engine.dispose()

    answered = {sid: (conv, text, got) for conv in conversations for sid, text, got in conv.answered}
    stored: dict[str, list] = {}
    for row in rows:
        stored.setdefault(row.provider_sid, []).append(row)
    assert set(stored) == set(answered), "every text that got a 200 is stored, and nothing else"
    assert [sid for sid, found in stored.items() if len(found) != 1] == [], "a text was stored twice"
    for sid, (_conv, text, got) in answered.items():
        (row,) = stored[sid]
        assert replies.get(row.id, 0) == len(got), f"{text!r}: the stored replies differ from the answer sent"
    resident_of = {conv.number: stored[conv.answered[0][0]][0].resident_id for conv in conversations}
    for conv in conversations:
        assert steps[resident_of[conv.number]] == conv.step, conv.number

    logs = first.output() + second.output()
    assert "Traceback" not in logs, logs[-3000:]
    assert not [c.number for c in conversations if c.number[2:] in logs], "a full number reached the log"


# -- kill -9 the follow-up sender mid-pass ---------------------------------------------------------------

FOLLOW_UPS = 150
SENDERS = 4  # SEND_CONCURRENCY: a kill strands at most the rows these were sending


def follow_up_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(select(FollowUp.status, func.count()).group_by(FollowUp.status)).all())
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", DATABASES)
def test_kill_9_during_dispatch_sends_each_follow_up_at_most_once_and_loses_none(kind, tmp_path):
    with fresh_database(kind, tmp_path) as url:
        upgrade(url)
        env = child_env(url, tmp_path / "instance", SEND_CONCURRENCY=str(SENDERS))
        app = create_app(load_settings(env), clock=FrozenClock(T0))  # same settings as the children
        rt = app.extensions["peaceline"]
        with rt.db.transaction() as s:
            for i in range(FOLLOW_UPS):
                resident = Resident(phone=f"+1816556{i:04d}", channel="sms", created_at=T0, last_seen_at=T0)
                s.add(resident)
                s.flush()
                s.add(
                    FollowUp(
                        resident_id=resident.id,
                        template="checkin",
                        due_at=T0 - timedelta(hours=1),
                        created_at=T0 - timedelta(days=3),
                    )
                )
        rt.db.dispose()

        sender = Process(["send-due", "--now", T0.isoformat(), "--json"], env, tmp_path / "send-due-1.log")
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and sender.proc.poll() is None:
                if follow_up_counts(url).get("logged", 0) >= 5:
                    break
                time.sleep(0.01)
            assert sender.proc.poll() is None, "the pass ended before the kill; add follow-ups"
        finally:
            sender.kill()
        at_kill = follow_up_counts(url)
        assert 0 < at_kill.get("logged", 0) < FOLLOW_UPS, at_kill

        # Another pass at once: a claim that is not stale yet is left alone, everything else goes out.
        again = run_cli(["send-due", "--now", T0.isoformat(), "--json"], env)
        assert again.returncode == 0, again.stderr[-3000:]
        second_pass = {d["id"]: d["status"] for d in json.loads(again.stdout)}
        # After STUCK_AFTER the row that was in flight at the kill is marked for review, not resent.
        later = (T0 + STUCK_AFTER + timedelta(minutes=1)).isoformat()
        last = run_cli(["send-due", "--now", later, "--json"], env)
        assert last.returncode == 0, last.stderr[-3000:]
        assert json.loads(last.stdout) == []

        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                followups = conn.execute(
                    select(FollowUp.id, FollowUp.resident_id, FollowUp.status, FollowUp.message_id)
                ).all()
                sent = dict(
                    conn.execute(
                        select(Message.resident_id, func.count())
                        .where(Message.kind == "followup")
                        .group_by(Message.resident_id)
                    ).all()
                )
                message_status = dict(
                    conn.execute(select(Message.id, Message.status).where(Message.kind == "followup")).all()
                )
        finally:
            engine.dispose()

    statuses = [f.status for f in followups]
    assert set(statuses) <= {"logged", "unknown"}, statuses
    assert statuses.count("unknown") <= SENDERS, (
        f"{statuses.count('unknown')} follow-ups were lost to review: only those in flight at the kill may be"
    )
    assert max(sent.values()) == 1, "a follow-up was sent twice"
    for f in followups:
        if f.status == "logged":
            assert sent.get(f.resident_id) == 1 and message_status[f.message_id] == "logged", f
    assert all(status == "logged" for status in second_pass.values())
    logged_before = at_kill.get("logged", 0)
    assert len(second_pass) + logged_before + statuses.count("unknown") == FOLLOW_UPS


def test_a_claim_takes_no_more_rows_than_asked(rt):
    """What a killed sender strands is what it claimed: a claim of one takes one row, on PostgreSQL too
    (where `id IN (SELECT … LIMIT 1 FOR UPDATE SKIP LOCKED)` can run the subquery once per row it updates)."""
    with rt.db.transaction() as s:
        for i in range(5):
            resident = Resident(phone=f"+1816557{i:04d}", channel="sms", created_at=T0)
            s.add(resident)
            s.flush()
            s.add(FollowUp(resident_id=resident.id, template="checkin", due_at=T0, created_at=T0))
    for expected_pending in (4, 3):
        with rt.db.transaction() as s:
            assert len(claim(s, T0, 1, rt.db.dialect == "postgresql")) == 1
        with rt.db.sessions() as s:
            counts = dict(s.execute(select(FollowUp.status, func.count()).group_by(FollowUp.status)).all())
        assert counts == {"sending": 5 - expected_pending, "pending": expected_pending}


# -- the database goes away ----------------------------------------------------------------------------


def timed(call):
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def assert_down_then_back(app, outage_begins, outage_ends, number: str) -> None:
    """MENU works; in the outage /sms, /healthz and the chat answer 503 within a second; then all resumes."""
    client = app.test_client()
    phone = Phone(client, number)
    assert any(SAYS["menu"] in r for r in phone.text(MENU))
    outage_begins()
    try:
        params = phone.payload(FOOD)
        resp, took = timed(lambda: phone.post(params))
        assert resp.status_code == 503 and took < 1.0, (resp.status_code, took, resp.data[:300])
        health, took = timed(lambda: client.get("/healthz"))
        assert health.status_code == 503 and health.get_json()["db"] == "down" and took < 1.0, took
        chat, took = timed(
            lambda: client.post("/chat/messages", json={"text": "hi"}, headers={"Origin": "http://localhost"})
        )
        assert chat.status_code == 503 and "error" in chat.get_json() and took < 1.0
    finally:
        outage_ends()
    # Back by itself: no restart. Twilio (or its fallback) sends the refused text again.
    assert client.get("/healthz").status_code == 200
    resp = phone.post(params)
    assert resp.status_code == 200
    assert any(SAYS["ask_zip"] in r for r in twiml_bodies(resp.get_data(as_text=True))), "the conversation went on"
    rt = app.extensions["peaceline"]
    with rt.db.sessions() as s:
        assert (
            s.scalar(select(func.count()).select_from(Message).where(Message.provider_sid == params["MessageSid"])) == 1
        )


def test_postgres_going_away_answers_503_fast_and_service_resumes_by_itself(env, database_url, is_postgres, clock):
    if not is_postgres:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL): the outage is a TCP forwarder in front of it")
    real = make_url(database_url)
    with TcpProxy(real.port or 5432, real.host or "127.0.0.1") as proxy:
        via_proxy = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = create_app(load_settings({**env, "DATABASE_URL": via_proxy}), clock=clock)
        try:
            assert_down_then_back(app, proxy.stop, proxy.start, "+18165550301")
        finally:
            app.extensions["peaceline"].db.dispose()


def test_sqlite_folder_gone_answers_503_fast_and_service_resumes_by_itself(
    env, database_url, is_postgres, clock, tmp_path
):
    """The folder holding the SQLite file disappears (an unmounted volume) while a worker reconnects."""
    if is_postgres:
        pytest.skip("the SQLite variant; the PostgreSQL one runs beside it")
    folder = tmp_path / "volume"
    folder.mkdir()
    shutil.copy(make_url(database_url).database, folder / "peaceline.db")
    app = create_app(load_settings({**env, "DATABASE_URL": f"sqlite:///{folder / 'peaceline.db'}"}), clock=clock)
    away = tmp_path / "volume-unmounted"
    db = app.extensions["peaceline"].db

    def unmount() -> None:
        folder.rename(away)
        db.engine.dispose()  # the worker's next request opens a connection: the open file is gone with it

    try:
        assert_down_then_back(app, unmount, lambda: away.rename(folder), "+18165550302")
        assert not away.exists()
    finally:
        db.dispose()


# -- Twilio misbehaves: a caseworker's reply and a dispatched follow-up -----------------------------------

FAULTS = {
    # name: (script for the fake, message status, follow-up status, requests made, opted out after)
    "timeout": ([requests.exceptions.ReadTimeout("read timed out")], "unknown", "unknown", 1, False),
    "500": ([error(500, 20500)], "unknown", "unknown", 1, False),
    "503": ([error(503, 20503)], "unknown", "unknown", 1, False),
    "429": ([error(429, 20429), created()], "queued", "sent", 2, False),
    "21610": ([error(400, 21610)], "failed", "failed", 1, True),
}


@pytest.fixture
def twilio_app(env, clock):
    """The app with the real TwilioSender over a scripted HttpClient (no network); `.fake` is the script."""
    settings = load_settings({**env, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_FROM_NUMBER": PROGRAM_NUMBER})
    fake = ScriptedTwilio()
    app = create_app(settings, clock=clock, sender=TwilioSender(settings, http_client=fake, sleep=lambda _s: None))
    app.fake = fake
    yield app
    app.extensions["peaceline"].db.dispose()


def resident_opted_out(rt, resident_id: int) -> bool:
    with rt.db.sessions() as s:
        return s.get(Resident, resident_id).opted_out


@pytest.mark.parametrize("fault", FAULTS, ids=FAULTS)
def test_twilio_fault_on_a_caseworker_reply_is_recorded_and_never_sent_twice(twilio_app, fault):
    script, message_status, _, requests_made, opted_out = FAULTS[fault]
    rt, fake = twilio_app.extensions["peaceline"], twilio_app.fake
    rid = open_referral(Phone(twilio_app.test_client()), rt)
    with rt.db.sessions() as s:
        resident_id = s.get(Referral, rid).resident_id
    fake.calls.clear()  # the on-duty notice, if any, is not what this test counts
    add_caseworker(rt)
    staff = Staff(twilio_app.test_client())
    assert staff.login().status_code == 302
    fake.steps[:] = list(script)
    resp = staff.post(f"/inbox/referrals/{rid}/reply", body="Hi, this is Ana from the help line.")
    assert resp.status_code == 302
    assert len(fake.calls) == requests_made and set(fake.sent_to) == {"+18165550123"}
    with rt.db.sessions() as s:
        (msg,) = s.scalars(select(Message).where(Message.kind == "caseworker")).all()
        referral = s.get(Referral, rid)
    assert msg.status == message_status
    assert resident_opted_out(rt, resident_id) is opted_out
    if fault == "21610":
        assert msg.error_code == 21610
    if message_status != "queued":
        assert referral.status != "contacted", "a text that may not have gone out is no contact"
        assert "Sent." not in staff.get(f"/inbox/referrals/{rid}").get_data(as_text=True)
    page = staff.get(f"/inbox/referrals/{rid}").get_data(as_text=True)
    label = {"unknown": "may not have gone out", "failed": "not sent", "queued": "sending"}[message_status]
    assert label in page, "the thread tells the caseworker what happened to the text"
    # nothing sends it again behind the caseworker's back
    dispatch_due(rt, rt.clock.now() + STUCK_AFTER + timedelta(minutes=1))
    assert len(fake.calls) == requests_made


@pytest.mark.parametrize("fault", FAULTS, ids=FAULTS)
def test_twilio_fault_on_a_follow_up_leaves_the_right_status_and_is_never_sent_twice(twilio_app, fault, clock):
    script, message_status, followup_status, requests_made, opted_out = FAULTS[fault]
    rt, fake = twilio_app.extensions["peaceline"], twilio_app.fake
    Phone(twilio_app.test_client()).text("hi")
    with rt.db.transaction() as s:
        resident_id = s.scalars(select(Resident.id)).one()
        for minutes in (1, 30):  # a second check-in, due later: it must respect what the first one learned
            s.add(
                FollowUp(
                    resident_id=resident_id, template="checkin", due_at=T0 + timedelta(minutes=minutes), created_at=T0
                )
            )
    fake.steps[:] = list(script)
    done = dispatch_due(rt, T0 + timedelta(minutes=1))
    assert [d.status for d in done] == [followup_status]
    assert len(fake.calls) == requests_made
    with rt.db.sessions() as s:
        first = s.scalars(select(FollowUp).order_by(FollowUp.id)).first()
        msg = s.get(Message, first.message_id)
    assert (first.status, msg.status, msg.kind) == (followup_status, message_status, "followup")
    assert resident_opted_out(rt, resident_id) is opted_out

    # The next passes (after the stuck-claim timeout too) never send the first one again.
    clock.set(T0 + timedelta(minutes=30))
    later = dispatch_due(rt, T0 + timedelta(minutes=30) + STUCK_AFTER)
    assert [d.status for d in later] == (["skipped_opted_out"] if opted_out else ["sent"])
    assert len(fake.calls) == requests_made + (0 if opted_out else 1)
    with rt.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.kind == "followup")) == (
            1 if opted_out else 2
        )
        assert s.get(FollowUp, first.id).status == followup_status
