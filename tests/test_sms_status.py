"""POST /sms/status: link SIDs to stored replies, move statuses forward only, act on errors."""

from __future__ import annotations

import pytest
from conftest import new_sid
from sqlalchemy import select

from bot.storage.models import Message, Resident


def status_params(sid: str, status: str, error: str | None = None) -> dict[str, str]:
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "From": "+18165550100",
        "To": "+18165550123",
        "ApiVersion": "2010-04-01",
    }
    if error:
        params["ErrorCode"] = error
    return params


def first_reply(rt) -> Message:
    with rt.db.sessions() as s:
        return s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)).first()


def post_status(phone, reply_id: int, sid: str, status: str, error: str | None = None):
    return phone.post(status_params(sid, status, error), path=f"/sms/status?reply={reply_id}")


def test_the_callback_links_twilios_sid_to_the_stored_reply(phone, rt):
    phone.text("hi")
    reply, sid = first_reply(rt), new_sid()
    assert post_status(phone, reply.id, sid, "sent").status_code == 204
    stored = first_reply(rt)
    assert (stored.provider_sid, stored.status) == (sid, "sent")


def test_a_status_never_moves_backwards_and_repeats_are_harmless(phone, rt):
    phone.text("hi")
    reply, sid = first_reply(rt), new_sid()
    for status in ("sent", "delivered", "sent", "delivered", "queued"):
        assert post_status(phone, reply.id, sid, status).status_code == 204
    assert first_reply(rt).status == "delivered"


def test_error_21610_marks_the_resident_opted_out(phone, rt):
    phone.text("hi")
    post_status(phone, first_reply(rt).id, new_sid(), "failed", "21610")
    with rt.db.sessions() as s:
        assert s.scalars(select(Resident)).one().opted_out


@pytest.mark.parametrize("code", ["21211", "30003", "30005", "30006"])
def test_undeliverable_errors_are_stored_with_the_reason(phone, rt, code):
    phone.text("hi")
    post_status(phone, first_reply(rt).id, new_sid(), "undelivered", code)
    reply = first_reply(rt)
    assert reply.status == "undelivered" and reply.error_code == int(code) and reply.error_message
    with rt.db.sessions() as s:
        assert s.scalars(select(Resident)).one().undeliverable_reason.startswith(code)


def test_the_status_callback_is_signed_too(phone, rt):
    phone.text("hi")
    resp = phone.post(status_params(new_sid(), "delivered"), path="/sms/status", signature="bad")
    assert resp.status_code == 403


def test_an_unknown_sid_is_acknowledged_and_ignored(phone):
    assert phone.post(status_params(new_sid(), "delivered"), path="/sms/status").status_code == 204
