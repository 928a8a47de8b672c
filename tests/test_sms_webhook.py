"""POST /sms: signatures, idempotency, bad input, loop guard — through the real app."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

import pytest
from conftest import AUTH_TOKEN, BASE_URL, RESIDENT, Phone, sign, twiml_bodies
from sqlalchemy import func, select

from bot.storage.models import Message, Resident


def count(rt, model, *where) -> int:
    with rt.db.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_a_signed_text_gets_twiml_replies_linked_to_status_callbacks(phone, rt):
    resp = phone.send("hi")
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    messages = list(ET.fromstring(resp.get_data(as_text=True)).iter("Message"))
    assert messages, "the greeting must answer a first text"
    with rt.db.sessions() as s:
        replies = s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)).all()
        assert [m.get("action") for m in messages] == [f"{BASE_URL}/sms/status?reply={r.id}" for r in replies]
        assert all(r.status == "queued" and r.segments >= 1 for r in replies)
        inbound = s.scalars(select(Message).where(Message.direction == "in")).one()
        assert inbound.body == "hi" and inbound.status == "received"
        assert s.scalars(select(Resident)).one().phone == RESIDENT


@pytest.mark.parametrize("signature", ["", "not-a-signature", sign("/sms", {"Body": "other"})])
def test_a_missing_or_bad_signature_is_refused(phone, rt, signature):
    resp = phone.post(phone.payload("hi"), signature=signature)
    assert resp.status_code == 403
    assert count(rt, Message) == 0


def test_a_tampered_parameter_is_refused(phone):
    params = phone.payload("hi")
    signature = sign("/sms", params)
    params["Body"] = "STOP"
    assert phone.post(params, signature=signature).status_code == 403


def test_a_signature_for_another_host_is_refused(phone):
    from twilio.request_validator import RequestValidator

    params = phone.payload("hi")
    forged = RequestValidator(AUTH_TOKEN).compute_signature("https://evil.example.com/sms", params)
    assert phone.post(params, signature=forged).status_code == 403


def test_without_an_auth_token_the_webhook_refuses_everything(env, clock):
    from bot import create_app
    from bot.config import load_settings

    env = {**env, "TWILIO_AUTH_TOKEN": ""}
    app = create_app(load_settings(env), clock=clock)
    resp = Phone(app.test_client()).send("hi")
    assert resp.status_code == 503
    assert b"TWILIO_AUTH_TOKEN" in resp.data
    app.extensions["peaceline"].db.dispose()


def test_a_retried_message_sid_is_handled_once_and_answered_the_same(phone, rt):
    params = phone.payload("I need food")
    first = phone.post(params)
    again = phone.post(params)
    assert first.status_code == again.status_code == 200
    assert twiml_bodies(first.get_data(as_text=True)) == twiml_bodies(again.get_data(as_text=True))
    assert count(rt, Message, Message.direction == "in") == 1
    assert count(rt, Message, Message.direction == "out") == len(twiml_bodies(first.get_data(as_text=True)))


def test_two_texts_at_once_from_one_phone_never_interleave(app, rt):
    """Both are stored and answered; the conversation state comes out of one then the other."""
    results: list[int] = []

    def text(body: str) -> None:
        results.append(Phone(app.test_client()).send(body).status_code)

    threads = [threading.Thread(target=text, args=(body,)) for body in ("hi", "I need food")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200]
    assert count(rt, Message, Message.direction == "in") == 2
    assert count(rt, Resident) == 1


BAD_BODIES = {
    "empty": "",
    "long": "help " * 1000,
    "emoji": "🙏🏽🏠🍞" * 20,
    "right-to-left": "مرحبا أحتاج مساعدة",
    "control": "hi\x01\x02\x1b[31m\x7f",
    "nul": "food\x00please",
    "only-nul": "\x00\x00",
    "xml": "<Response><Message>pwned</Message></Response>",
    "sql": "'; DROP TABLE residents; --",
    "surrogate-ish": "\ufffd\ufeff\u200b",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_any_body_a_phone_can_send_gets_a_clean_answer(phone, rt, body):
    resp = phone.send(body)
    assert resp.status_code == 200, resp.data
    ET.fromstring(resp.get_data(as_text=True))  # well-formed TwiML
    with rt.db.sessions() as s:
        stored = s.scalars(select(Message).where(Message.direction == "in")).one()
    assert stored.body == body.replace("\x00", "")


def test_a_picture_with_no_text_is_stored_and_answered(phone, rt):
    resp = phone.send("", NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME1", MediaContentType0="image/jpeg")
    assert resp.status_code == 200
    assert twiml_bodies(resp.get_data(as_text=True)), "an MMS with no text still gets an answer"
    with rt.db.sessions() as s:
        assert s.scalars(select(Message).where(Message.direction == "in")).one().num_media == 1


def test_a_whatsapp_sender_is_understood(client, rt):
    resp = Phone(client, number="whatsapp:+18165550199").send("hi")
    assert resp.status_code == 200
    with rt.db.sessions() as s:
        assert s.scalars(select(Resident)).one().phone == "+18165550199"
        assert s.scalars(select(Message)).first().channel == "whatsapp"


@pytest.mark.parametrize(
    "sender, reason",
    [
        (None, b"From: missing number"),
        ("", b"From: missing number"),
        ("not a number", b"not a phone number"),
        ("+1", b"From"),
    ],
)
def test_a_missing_or_unreadable_sender_gets_400_with_a_reason(phone, sender, reason):
    params = phone.payload("hi", From=sender)
    resp = phone.post(params)
    assert resp.status_code == 400
    assert reason in resp.data


def test_the_loop_guard_stores_but_stops_answering_a_robot(phone, rt, settings):
    answered = [bool(phone.text(f"auto reply {i}")) for i in range(settings.loop_guard_per_minute + 3)]
    assert answered[0] is True
    assert answered[-2:] == [False, False], "a runaway sender must stop getting answers"
    assert count(rt, Message, Message.direction == "in") == len(answered)
    assert count(rt, Message, Message.status == "loop_guard") >= 2


def test_the_loop_guard_lifts_after_the_quiet_time(phone, clock, settings):
    from datetime import timedelta

    for i in range(settings.loop_guard_per_minute + 2):
        phone.text(f"auto reply {i}")
    assert phone.text("hello?") == []
    clock.set(clock.now() + timedelta(minutes=settings.loop_guard_quiet_minutes + 1))
    assert phone.text("MENU"), "a person who comes back later is answered again"


def test_stop_works_even_under_the_loop_guard(phone, rt, settings):
    for i in range(settings.loop_guard_per_minute + 2):
        phone.text(f"auto reply {i}")
    assert len(phone.text("STOP")) == 1
    with rt.db.sessions() as s:
        assert s.scalars(select(Resident)).one().opted_out


def test_crisis_wording_is_answered_even_under_the_loop_guard(phone, settings):
    for i in range(settings.loop_guard_per_minute + 2):
        phone.text(f"auto reply {i}")
    replies = phone.text("I want to kill myself")
    assert any("988" in r for r in replies)
