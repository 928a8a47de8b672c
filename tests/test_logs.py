"""No full phone number and no message body in any log line of a whole conversation."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from sqlalchemy import select

from bot import logs
from bot.logs import MaskingFilter
from bot.messaging.phones import mask, mask_text
from bot.storage.models import Message


def test_a_whole_conversation_logs_no_number_and_no_body(phone, rt, caplog):
    caplog.handler.addFilter(MaskingFilter())
    texts = ["hi", "I need food", "64124", "talk to a person", "STOP"]
    with caplog.at_level(logging.DEBUG):
        for text in texts:
            phone.text(text)
        rt.outbound.send(1, "Our caseworker Maria will call you", "caseworker")
    lines = [caplog.handler.format(r) for r in caplog.records]
    assert lines, "the conversation must be logged"
    joined = "\n".join(lines)
    assert "8165550123" not in joined
    for body in ["I need food", "talk to a person", "Our caseworker Maria"]:
        assert body not in joined


def test_the_mask_keeps_area_code_and_last_four():
    assert mask("+18165550123") == "+1816•••0123"
    assert mask(None) == "-"


def test_the_filter_masks_numbers_that_slip_into_a_record():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent to %s", ("+18165550123",), None)
    MaskingFilter().filter(record)
    assert record.getMessage() == "sent to +1816•••0123"


# -- logs an operator can read (issue 12) --------------------------------------------------------------------

ISO_LINE = (
    'Running job "tick (trigger: interval[0:00:05], next run at: 2026-12-02 03:04:11 UTC)" '
    "(scheduled at 2026-12-02 03:04:06.123456+00:00) ts=2026-12-02T03:04:11.123456+00:00 epoch=1764644651 "
    "ms=1764644651123 day=2026/12/02 stamp=20261202030411 referral=12345 "
    "request=550e8400-e29b-41d4-a716-446655440000 sid=SM0123456789abcdef0123456789abcdef version=1.2.3"
)
PHONES = {
    "+18165550123": "+1816•••0123",
    "(816) 555-0123": "+816•••0123",
    "816-555-0123": "+816•••0123",
    "816.555.0123": "+816•••0123",
    "+1 816 555 0123": "+1816•••0123",
    "+1 (816) 555-0123": "+1816•••0123",
    "1-816-555-0123": "+1816•••0123",
    "8165550123": "+816•••0123",
    "whatsapp:+18165550123": "whatsapp:+1816•••0123",
    "+447911123456": "+447•••3456",
}


def test_the_mask_never_touches_times_dates_or_ids():
    assert mask_text(ISO_LINE) == ISO_LINE


@pytest.mark.parametrize("written", list(PHONES))
def test_the_mask_finds_a_number_however_it_is_written_beside_times(written):
    line = f"2026-12-02T03:04:11+00:00 sms.failed to={written} at 2026-12-02 03:04:11 UTC"
    assert mask_text(line) == f"2026-12-02T03:04:11+00:00 sms.failed to={PHONES[written]} at 2026-12-02 03:04:11 UTC"


def test_scheduler_heartbeats_go_to_debug(caplog):
    logs.configure()
    heartbeat = logging.getLogger("apscheduler.executors.default")
    with caplog.at_level(logging.INFO):
        heartbeat.info(ISO_LINE)
        heartbeat.warning("Run time of job was missed by 0:00:02")
    assert [(r.levelname, r.getMessage()[:16]) for r in caplog.records] == [("WARNING", "Run time of job ")]
    with caplog.at_level(logging.DEBUG):
        heartbeat.info(ISO_LINE)
    assert caplog.records[-1].levelname == "DEBUG"


def test_chat_keeps_the_logs_out_of_the_conversation(env):
    run = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        cwd=ROOT,
        env={**os.environ, **env},
        input="I need food\n64124\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "Places with food" in run.stdout
    assert '"level"' not in run.stdout + run.stderr
    log_file = Path(env["PEACELINE_INSTANCE"]) / "chat.log"
    assert "message.handled" in log_file.read_text()


def test_the_front_door_sends_residents_to_the_chat_and_staff_to_sign_in(client):
    resp = client.get("/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/chat")
    page = client.get("/chat").get_data(as_text=True)
    assert 'href="/login"' in page and "Staff sign in" in page


def test_terminal_answers_are_delivered_not_sending(env, rt):
    rt.service.handle(channel="terminal", address="+12025550123", text="hi", provider_sid="TERM1")
    with rt.db.sessions() as s:
        statuses = set(s.scalars(select(Message.status).where(Message.direction == "out")))
    assert statuses == {"delivered"}
