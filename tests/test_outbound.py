"""Outbound through the real twilio client, with an injected HttpClient standing in for the network."""

from __future__ import annotations

import json
import logging

import pytest
import requests
from sqlalchemy import func, select
from twilio.http import HttpClient
from twilio.http.response import Response

from bot.config import load_settings
from bot.messaging.outbound import LogSender, Outbound, TwilioSender
from bot.storage.models import Message, Resident

SID = "AC" + "1" * 32


class ScriptedTwilio(HttpClient):
    """Answers each request with the next scripted step: a (status, json) pair or an exception."""

    def __init__(self, *steps) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), is_async=False, timeout=10)
        self.steps, self.calls = list(steps), []

    def request(
        self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        self.calls.append({"url": uri, "data": dict(data or {})})
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        status, body = step
        return Response(status, json.dumps(body))


def created(sid: str = "SM" + "a" * 32) -> tuple[int, dict]:
    return 201, {"sid": sid, "status": "queued", "account_sid": SID, "body": "x", "num_segments": "1"}


def error(status: int, code: int) -> tuple[int, dict]:
    return status, {"code": code, "message": f"error {code}", "status": status, "more_info": ""}


@pytest.fixture
def resident_id(phone, rt) -> int:
    phone.text("hi")
    with rt.db.sessions() as s:
        return s.scalars(select(Resident)).one().id


@pytest.fixture
def twilio_env(env):
    return load_settings({**env, "TWILIO_ACCOUNT_SID": SID, "TWILIO_FROM_NUMBER": "+18165550100"})


def outbound_with(rt, settings, http: ScriptedTwilio) -> Outbound:
    sender = TwilioSender(settings, http_client=http, sleep=lambda _s: None)
    return Outbound(settings, rt.db, sender, rt.clock)


def stored(rt, message_id: int) -> Message:
    with rt.db.sessions() as s:
        return s.get(Message, message_id)


def test_a_send_is_recorded_with_its_sid_and_asks_for_status_callbacks(rt, twilio_env, resident_id):
    http = ScriptedTwilio(created("SM" + "b" * 32))
    msg = outbound_with(rt, twilio_env, http).send(resident_id, "Hi, checking in.", "caseworker")
    row = stored(rt, msg.id)
    assert (row.status, row.provider_sid, row.segments) == ("queued", "SM" + "b" * 32, 1)
    call = http.calls[0]
    assert call["data"]["StatusCallback"].endswith("/sms/status")
    assert call["data"]["To"] == "+18165550123" and call["data"]["From"] == "+18165550100"


def test_the_real_client_waits_at_most_ten_seconds(twilio_env):
    assert TwilioSender(twilio_env).client.http_client.timeout == 10


def test_429_is_retried_and_sends_once(rt, twilio_env, resident_id):
    http = ScriptedTwilio(error(429, 20429), created())
    msg = outbound_with(rt, twilio_env, http).send(resident_id, "Hi", "caseworker")
    assert stored(rt, msg.id).status == "queued" and len(http.calls) == 2


def test_a_refused_connection_is_retried_then_recorded_as_failed(rt, twilio_env, resident_id):
    http = ScriptedTwilio(*[requests.exceptions.ConnectionError("refused")] * 3)
    msg = outbound_with(rt, twilio_env, http).send(resident_id, "Hi", "caseworker")
    row = stored(rt, msg.id)
    assert row.status == "failed" and "connect" in row.error_message and len(http.calls) == 3


@pytest.mark.parametrize("step", [requests.exceptions.ReadTimeout("slow"), error(500, 20500), error(503, 20503)])
def test_a_timeout_or_5xx_is_never_retried_and_left_unknown(rt, twilio_env, resident_id, step):
    http = ScriptedTwilio(step, created())
    msg = outbound_with(rt, twilio_env, http).send(resident_id, "Hi", "caseworker")
    assert stored(rt, msg.id).status == "unknown"
    assert len(http.calls) == 1, "a second try could text the resident twice"


def test_21610_records_the_failure_and_opts_the_resident_out(rt, twilio_env, resident_id):
    http = ScriptedTwilio(error(400, 21610))
    out = outbound_with(rt, twilio_env, http)
    msg = out.send(resident_id, "Hi", "caseworker")
    row = stored(rt, msg.id)
    assert (row.status, row.error_code) == ("failed", 21610)
    assert out.send(resident_id, "Hi again", "caseworker").status == "skipped_opted_out"
    assert len(http.calls) == 1


def test_without_an_account_texts_are_logged_not_sent(rt, resident_id, caplog):
    assert isinstance(rt.outbound.sender, LogSender)
    with caplog.at_level("INFO"):
        msg = rt.outbound.send(resident_id, "A private body", "caseworker")
    assert stored(rt, msg.id).status == "logged"
    assert "+18165550123" not in caplog.text and "A private body" not in caplog.text
    with rt.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.status == "logged")) == 1
