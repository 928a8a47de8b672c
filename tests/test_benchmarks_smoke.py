"""The benchmarks' inputs stay valid: signed requests the real app accepts, conversations it follows,
and follow-ups the dispatcher sends. No timing here: see benchmarks/README.md for the figures."""

from __future__ import annotations

import importlib.util
import sys
from urllib.parse import urlencode

import pytest
from conftest import ROOT, T0, twiml_bodies
from sqlalchemy import event, func, select

from bot.config import load_settings
from bot.messaging.dispatch import dispatch_due
from bot.storage.models import FollowUp, Message

BENCHMARKS = ROOT / "benchmarks"


def load(name: str):
    """A benchmarks/ script as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def webhook():
    return load("webhook")


@pytest.fixture
def bench_env(env, webhook) -> dict[str, str]:
    """The settings benchmarks/webhook.py gives gunicorn (its token, base URL and loop guard)."""
    return {
        **env,
        "TWILIO_AUTH_TOKEN": webhook.TOKEN,
        "PUBLIC_BASE_URL": webhook.BASE_URL,
        "LOOP_GUARD_PER_MINUTE": "100000",
    }


@pytest.fixture
def bench_client(bench_env, clock):
    from bot import create_app

    app = create_app(load_settings(bench_env), clock=clock)
    yield app.test_client()
    app.extensions["peaceline"].db.dispose()


def post(client, signature: str, params: dict[str, str]):
    """Exactly what wrk sends: the form-encoded body from the request file and the signature header."""
    return client.post(
        "/sms",
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )


def test_generated_requests_are_signed_and_answered(webhook, bench_client, tmp_path):
    requests = webhook.signed_requests(residents=5, turns=1)
    assert len({params["MessageSid"] for _, params in requests}) == 5
    # Round-trip through the file webhook.lua reads: one "signature<TAB>body" line per request.
    lines = webhook.write_requests(tmp_path / "requests.tsv", requests).read_text().splitlines()
    assert [line.split("\t") for line in lines] == [[sig, urlencode(p)] for sig, p in requests]
    for signature, params in requests:
        resp = post(bench_client, signature, params)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.mimetype == "text/xml" and twiml_bodies(resp.get_data(as_text=True))


def test_a_tampered_request_is_refused(webhook, bench_client):
    [(signature, params)] = webhook.signed_requests(residents=1, turns=1)
    assert post(bench_client, signature, {**params, "Body": "something else"}).status_code == 403


def test_the_conversations_follow_the_flows(webhook, bench_client):
    """A few residents' whole scripts: every text answered (or relayed in a hand-off), never 'did not get that'."""
    requests = webhook.signed_requests(residents=4, turns=14)
    misses = []
    for signature, params in requests:
        resp = post(bench_client, signature, params)
        assert resp.status_code == 200
        replies = twiml_bodies(resp.get_data(as_text=True))
        if not replies or any("did not get that" in r or r.startswith("Por favor") for r in replies):
            misses.append((params["From"], params["Body"], replies))
    assert misses == []


def test_every_resident_has_a_script_of_the_asked_length(webhook):
    scripts = [webhook.conversation(r, 20) for r in range(50)]
    assert all(len(s) == 20 for s in scripts)
    assert len({webhook.phone_number(r) for r in range(2000)}) == 2000


def test_the_dispatch_benchmark_seeds_follow_ups_that_go_out_once(database_url, rt):
    dispatch = load("dispatch")
    dispatch.seed(database_url, 12, now=T0)
    done = dispatch_due(rt, T0)
    assert len(done) == 12 and {d.status for d in done} == {"logged"}
    result = dispatch.verify(database_url, 12, status="logged", message_status="logged")
    assert result["ok"], result
    with rt.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.kind == "followup")) == 12
        assert s.scalar(select(func.count()).select_from(FollowUp).where(FollowUp.status == "logged")) == 12


def test_the_minimal_app_answers_a_signed_text_with_five_statements(webhook, tmp_path, monkeypatch):
    """benchmarks/minimal_app.py, the floor the webhook benchmark shows beside the project."""
    minimal = load("minimal_app")
    url = f"sqlite:///{tmp_path / 'minimal.db'}"
    minimal.create_tables(url)
    for name, value in (
        ("DATABASE_URL", url),
        ("TWILIO_AUTH_TOKEN", webhook.TOKEN),
        ("PUBLIC_BASE_URL", webhook.BASE_URL),
    ):
        monkeypatch.setenv(name, value)
    seen: list[str] = []
    event.listen(
        minimal.engine(),
        "before_cursor_execute",
        lambda _c, _k, sql, *_: seen.append(sql) if "BEGIN" not in sql else None,
    )
    [(signature, params)] = webhook.signed_requests(residents=1, turns=1)
    resp = post(minimal.app.test_client(), signature, params)
    assert resp.status_code == 200 and twiml_bodies(resp.get_data(as_text=True))
    assert len(seen) == 5, seen
    assert post(minimal.app.test_client(), signature, {**params, "Body": "tampered"}).status_code == 403


def test_the_in_process_replay_answers_every_text_and_sees_its_path(bench_client):
    """benchmarks/turn_cpu.py: every replayed text is answered (it stops on any other status), and each
    counted text is put down to the Core path or the ORM path."""
    turn_cpu = load("turn_cpu")
    times = turn_cpu.measure(bench_client.application, turn_cpu.environs(residents=3, turns=8), warmup=3)
    assert len(times["core"]) + len(times["orm"]) == 3 * 8 - 3
    assert times["core"], "the conversations' ordinary texts take the Core path"
