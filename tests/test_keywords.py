"""Compliance keywords: whole-message opt-outs only, in English and Spanish."""

from __future__ import annotations

import pytest

from bot.conversation.keywords import Compliance, classify

STOP = [
    "STOP",
    "stop",
    "Stop.",
    "STOP!!",
    " stop ",
    "StOp",
    "stop!!!",
    "STOPALL",
    "stop all",
    "stop stop",
    "UNSUBSCRIBE",
    "unsubscribe.",
    "CANCEL",
    "cancel",
    "END",
    "end",
    "QUIT",
    "quit",
    "REVOKE",
    "revoke",
    "OPTOUT",
    "opt out",
    "opt-out",
    "ok stop",
    "stop please",
    "please stop",
    "stop it",
    "stop now",
    "stop texting me",
    "Stop texting me!",
    "stop texting me please",
    "please stop messaging me",
    "stop sending me messages",
    "stop sending me these texts",
    "quit texting me",
    "stop calling me",
    "no more texts please",
    "no more messages",
    "stop the texts",
    "don't text me",
    "do not text me again",
    "dont contact me anymore",
    "don't send me any more messages",
    "i dont want these messages",
    "I don't want any more texts",
    "unsubscribe me",
    "unsubscribe me from this list",
    "opt me out",
    "i want to unsubscribe",
    "remove me from your list",
    "remove my number",
    "take me off your list",
    "leave me alone",
    "wrong number",
    "you have the wrong number",
    "alto",
    "ALTO",
    "basta",
    "parar",
    "para",
    "cancelar",
    "baja",
    "ya basta",
    "no me manden más mensajes",
    "no me manden mas mensajes",
    "No me manden más mensajes por favor",
    "ya no me escriban",
    "no me escriban",
    "no me envíen mensajes",
    "ya no me manden nada",
    "basta de mensajes",
    "no más mensajes",
    "dejen de mandarme mensajes",
    "deja de escribirme",
    "no quiero recibir mensajes",
    "no quiero más mensajes",
    "no quiero que me escriban",
    "darme de baja",
    "quiero darme de baja",
    "quítenme de la lista",
    "déjenme en paz",
    "número equivocado",
]

NOT_STOP = [
    "he won't leave me alone",
    "stop hitting me",
    "I can't stop crying",
    "my lights will end tomorrow",
    "cancel my appointment?",
    "i want to stop drinking",
    "how do i stop my eviction",
    "the end",
    "end of the month",
    "I quit my job",
    "no more food",
    "no more money for rent",
    "my boyfriend won't stop texting me",
    "tell him to stop calling me",
    "the bus stop",
    "para mi hijo",
    "necesito ayuda para la renta",
    "el alquiler está muy alto",
    "no me deja en paz",
    "basta, me está pegando",
    "no quiero",
    "no",
    "leave",
    "thank you",
    "ayuda",
    "no tengo comida",
    "cancelaron mi cita",
    "stop stop he is hurting me",
    "start",
    "help",
]


@pytest.mark.parametrize("text", STOP)
def test_opt_outs(text):
    assert classify(text) is Compliance.STOP
    assert classify(text, opted_out=True) is Compliance.STOP


@pytest.mark.parametrize("text", NOT_STOP)
def test_messages_that_merely_contain_opt_out_words_are_not_opt_outs(text):
    assert classify(text) is not Compliance.STOP


@pytest.mark.parametrize("text", ["START", "start", "Start.", "UNSTOP", "unstop!"])
def test_start_opts_in_whatever_the_state(text):
    assert classify(text) is Compliance.START
    assert classify(text, opted_out=True) is Compliance.START


@pytest.mark.parametrize("text", ["YES", "yes", "Yes.", "SI", "si", "sí", "Sí!"])
def test_yes_opts_back_in_only_when_opted_out(text):
    assert classify(text, opted_out=True) is Compliance.START
    assert classify(text) is None


@pytest.mark.parametrize("text", ["start over", "yes please", "start a new job", "si claro"])
def test_start_words_inside_a_longer_message_are_not_start(text):
    assert classify(text) is None


@pytest.mark.parametrize("text", ["HELP", "help", "Help?", "INFO", "info."])
def test_help(text):
    assert classify(text) is Compliance.HELP
    assert classify(text, opted_out=True) is Compliance.HELP


@pytest.mark.parametrize(
    "text",
    [
        "ayuda",
        "AYUDA",
        "ayuda?",
        "help me",
        "I need help",
        "help with rent",
        "information about food",
        "necesito ayuda",
    ],
)
def test_a_request_for_help_is_not_the_help_keyword(text):
    assert classify(text) is None


@pytest.mark.parametrize("text", ["", "   ", "!!!", "🙏", "hi", "64124", "1"])
def test_everything_else_is_none(text):
    assert classify(text) is None
    assert classify(text, opted_out=True) is None
