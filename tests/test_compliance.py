"""STOP, START, HELP and Twilio's Advanced Opt-Out, through the signed webhook."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.storage.models import Message, Resident


def resident(rt) -> Resident:
    with rt.db.sessions() as s:
        return s.scalars(select(Resident)).one()


STOP_WORDS = [
    "STOP",
    "stop",
    "Stop.",
    "STOPALL",
    "unsubscribe",
    "CANCEL",
    "end",
    "QUIT",
    "revoke",
    "OPTOUT",
    " stop! ",
    "stop texting me",
    "no more texts please",
    "no me manden más mensajes",
]


@pytest.mark.parametrize("word", STOP_WORDS)
def test_stop_opts_out_with_one_confirmation_then_silence(phone, rt, word):
    phone.text("hi")
    confirmation = phone.text(word)
    assert len(confirmation) == 1 and "START" in confirmation[0]
    assert resident(rt).opted_out
    assert phone.text("I need food") == [], "nothing after the confirmation"
    assert phone.text("MENU") == []


def test_after_stop_no_text_leaves_for_that_number(phone, rt):
    phone.text("STOP")
    msg = rt.outbound.send(resident(rt).id, "Hi, it's the Northeast help line checking in.", "caseworker")
    assert msg.status == "skipped_opted_out"
    with rt.db.sessions() as s:
        assert s.get(Message, msg.id).body, "the refused text is still recorded"


@pytest.mark.parametrize("word", ["START", "unstop", "YES"])
def test_start_opts_back_in(phone, rt, word):
    phone.text("STOP")
    replies = phone.text(word)
    assert replies, "the resident is welcomed back"
    assert not resident(rt).opted_out


@pytest.mark.parametrize(
    "phrase", ["he won't leave me alone", "stop hitting me", "I can't stop crying", "my lights will end tomorrow"]
)
def test_phrases_that_merely_contain_opt_out_words_are_not_revocations(phone, rt, phrase):
    replies = phone.text(phrase)
    assert replies, "a person asking for help is answered"
    assert not resident(rt).opted_out


def test_crisis_from_an_opted_out_resident_is_still_answered(phone, rt):
    phone.text("STOP")
    replies = phone.text("I want to kill myself")
    assert any("988" in r for r in replies)
    assert resident(rt).opted_out, "answering a crisis does not opt them back in"


def test_help_and_info_name_the_program_and_how_to_stop(phone):
    for word in ("HELP", "info"):
        replies = phone.text(word)
        assert any("STOP" in r for r in replies)


@pytest.mark.parametrize("word, kind, opted_out", [("STOP", "STOP", True), ("HELP", "HELP", False)])
def test_advanced_opt_out_already_answered_so_twiml_is_empty(phone, rt, word, kind, opted_out):
    assert phone.text(word, OptOutType=kind) == []
    assert resident(rt).opted_out is opted_out


def test_advanced_opt_out_start_opts_back_in_silently(phone, rt):
    phone.text("STOP", OptOutType="STOP")
    assert phone.text("START", OptOutType="START") == []
    assert not resident(rt).opted_out


def test_an_unknown_opt_out_type_does_not_silence_the_bot(phone, rt):
    assert phone.text("I need food", OptOutType="SOMETHING_NEW")
    assert not resident(rt).opted_out
