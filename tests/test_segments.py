"""Texts go out in their GSM-7 form: look-alike punctuation and, where it saves a segment, á í ó ú."""

from __future__ import annotations

import pytest
from conftest import Phone
from sqlalchemy import select
from staff_helpers import add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot import create_app
from bot.casework import cases
from bot.config import load_settings
from bot.conversation.segments import is_gsm7, segments, to_gsm
from bot.storage.models import Message, Referral


@pytest.mark.parametrize(
    "raw, sent",
    [
        ("I’m here — call 911…", "I'm here - call 911..."),
        ("“Open” ‘now’ – yes", "\"Open\" 'now' - yes"),
        ("8:30\u00a0am", "8:30 am"),
    ],
)
def test_look_alike_punctuation_goes_out_as_gsm7(raw, sent):
    assert to_gsm(raw) == sent and is_gsm7(sent)


def test_acute_accents_go_unaccented_only_when_that_saves_a_segment():
    two = "Hola, es la Línea de Ayuda del Noreste. Los textos son privados, no anónimos."
    assert segments(two) == 2
    assert to_gsm(two) == "Hola, es la Linea de Ayuda del Noreste. Los textos son privados, no anonimos."
    assert segments(to_gsm(two)) == 1
    short = "¿Está a salvo? Responda 1 sí, 2 no"  # one segment either way: the accents stay
    assert to_gsm(short) == short


def test_gsm7_letters_stay_accented_and_emoji_keep_the_text_as_it_is():
    assert to_gsm("Está bien, mañana, pingüino, ¡sí! é") == "Está bien, mañana, pingüino, ¡sí! é"
    long = "Línea " * 20 + "🙂"
    assert to_gsm(long) == long  # still UCS-2 without the accents: nothing gained, nothing changed
    assert to_gsm("é ñ ü ¿ ¡ " * 20 + "ó").endswith("o") and is_gsm7(to_gsm("é ñ ü ¿ ¡ " * 20 + "ó"))


def test_fold_accents_off_keeps_every_accent():
    two = "Hola, es la Línea de Ayuda del Noreste. Los textos son privados, no anónimos."
    assert to_gsm(two, fold_accents=False) == two


def test_a_spanish_greeting_by_sms_is_one_segment(phone):
    greeting, _menu = phone.text("hola")
    assert segments(greeting) == 1 and "Linea de Ayuda del Noreste" in greeting


def test_fold_accents_off_sends_the_accents(env, clock):
    app = create_app(load_settings({**env, "FOLD_ACCENTS": "0"}), clock=clock)
    try:
        greeting, _menu = Phone(app.test_client()).text("hola")
        assert "Línea de Ayuda del Noreste" in greeting
    finally:
        app.extensions["peaceline"].db.dispose()


def test_web_chat_keeps_the_accents(client):
    replies = client.post("/chat/messages", json={"text": "hola"}, headers={"Origin": "http://localhost"}).get_json()
    assert "Línea de Ayuda del Noreste" in replies["replies"][0]


@pytest.fixture
def sender(outbox):
    return outbox


def test_a_caseworkers_curly_quote_does_not_make_a_reply_two_segments(rt, phone, outbox):
    ana = add_caseworker(rt)
    phone.text("talk to a person")
    with rt.db.sessions() as s:
        referral_id = s.scalars(select(Referral.id)).one()
    body = "Hi, I’m Ana from the help line. I’ll call you at 3 — is that OK? " * 2
    msg = cases.reply(rt, referral_id, ana, body.strip())
    sent = outbox.to(phone.number)[-1]
    assert "’" not in sent and "—" not in sent and is_gsm7(sent) and segments(sent) == 1
    with rt.db.sessions() as s:
        stored = s.get(Message, msg.id)
    assert stored.body == sent and stored.segments == 1
