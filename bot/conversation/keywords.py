"""Compliance keywords: STOP, START and HELP, and whole-message opt-outs in English and Spanish.

The words are fixed by carrier rules and the law, not by the operator, so they live here
rather than in the vocabulary file. A message that merely contains an opt-out word is not
an opt-out ("stop hitting me", "he won't leave me alone"): only the whole message counts.

A "don't text me" that gives a safety reason ("please dont text me back he checks my phone")
is not an opt-out either: it means do not text first (REPLY_ONLY). Nothing the line starts
goes out, and her own texts are still answered.
"""

from __future__ import annotations

import re
from enum import StrEnum

from bot.conversation.matching import normalize


class Compliance(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"
    REPLY_ONLY = "reply_only"  # "don't text me, he checks my phone": answer, but never text first
    SAFE = "safe"  # the line may text first again (contact preference 1)
    NOT_SAFE = "not_safe"  # nothing but answers to her own texts (3); also a danger signal
    DELETE = "delete"  # erase my data (asks once, then erases)


_STOP_WORDS = frozenset(
    {
        "stop",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "alto",
        "parar",
        "para",
        "basta",
        "cancelar",
        "detener",
        "baja",
        "desuscribir",
    }
)
_START_WORDS = frozenset({"start", "unstop"})
# How we may reach her, changed any time; the whole message, so "i feel safe now" is not one.
_SAFE_WORDS = frozenset({"safe", "seguro", "segura", "es seguro", "safe to text"})
_NOT_SAFE_WORDS = frozenset(
    {"not safe", "unsafe", "no seguro", "no segura", "no es seguro", "not safe to text", "inseguro", "insegura"}
)
# DELETE or BORRAR, exactly or as a whole-message phrase ("delete my data"); "delete me" is an opt-out.
_DELETE = re.compile(
    r"(?:please |por favor )?(?:delete|erase|borrar|borren|borre|borra|eliminar|eliminen)"
    r"(?: (?:all )?(?:my|mis|todos mis|all my|everything|todo)"
    r"(?: (?:data|messages|texts|info|information|history|datos|mensajes|textos|informacion))?)?"
    r"(?: (?:please|por favor))?"
)
_OPT_IN_ANSWERS = frozenset({"yes", "si"})
# HELP and INFO must be the whole message: a resident writing "help me" or "ayuda" needs
# the bot, not the program's name and how to stop.
_HELP_WORDS = frozenset({"help", "info"})
# Dropped at either end before an opt-out is read: "ok stop please", "ya no me escriban".
_FILLERS = frozenset(
    {
        "please",
        "pls",
        "plz",
        "now",
        "thanks",
        "thank",
        "you",
        "thx",
        "ty",
        "ok",
        "okay",
        "already",
        "just",
        "hey",
        "hi",
        "por",
        "favor",
        "porfa",
        "porfavor",
        "gracias",
        "ya",
        "ahora",
        "hola",
    }
)

_SENDING = (
    r"(?:texting|txting|texing|messaging|msging|sending|contacting|calling|writing|bothering|spamming"
    r"|emailing)"
)
_ME = r"(?:me|us|this number|my number|my phone|to me)"
_MESSAGES = r"(?:texts?|txts?|messages?|msgs?|sms|notifications?|alerts?|reminders?|spam)"
_AGAIN = r"(?: (?:anymore|any more|again|ever again|ever))?"
_WHICH = r"(?: (?:the|these|those|all|your|ur|this|any|more|any more))?"
_ES_VERBS = (
    r"(?:manden|mandes|mande|envien|envies|envie|escriban|escribas|escriba|textees|texteen|textee"
    r"|contacten|contactes|contacte|llamen|llames|molesten|molestes|moleste)"
)
_ES_MESSAGES = r"(?:mensajes|mensaje|textos|texto|msjs|msj|sms)"

_REVOCATIONS = [
    # English
    rf"(?:stop|quit|cease|end)(?: all)? {_SENDING}(?: {_ME})?{_WHICH}(?: {_MESSAGES})?{_AGAIN}",
    rf"(?:stop|quit|end|cancel|no more|enough|enough with|unsubscribe from){_WHICH} {_MESSAGES}{_AGAIN}",
    rf"(?:dont|do not|never) (?:ever )?(?:text|txt|message|msg|contact|call|write|send|email)(?: {_ME})?{_WHICH}"
    rf"(?: {_MESSAGES})?{_AGAIN}",
    rf"(?:i )?(?:dont|do not) want (?:to (?:get|receive) )?(?:(?:any|these|your|ur|the) )?(?:more )?"
    rf"{_MESSAGES}{_AGAIN}",
    r"(?:i (?:want|would like|wanna|need) to )?(?:unsubscribe|opt out|optout|opt me out)(?: me)?"
    r"(?: from (?:this|these|the|your|ur|all) (?:list|texts|messages|service|number|program))?",
    r"(?:remove|delete) (?:me|my number|this number|us)"
    r"(?: (?:off|from) (?:this|the|your|ur|all|that) (?:list|texts|messages|contacts|system|service))?",
    r"(?:take|get) (?:me|my number|this number) off (?:this|the|your|ur|that)"
    r" (?:list|texts|messages|contacts|system)",
    r"stop it|leave me alone|(?:(?:you have|youve got|you got|have|got|this is) (?:the |a )?)?wrong number",
    # Spanish
    rf"(?:ya )?no me {_ES_VERBS}(?: mas)?(?: (?:{_ES_MESSAGES}|nada))?(?: mas)?",
    rf"(?:dejen|deja|deje|paren|para|pare) de (?:mandar|enviar|escribir|textear|molestar|llamar)(?:me|nos)?"
    rf"(?: {_ES_MESSAGES})?(?: mas)?",
    rf"(?:ya )?(?:basta|no mas|alto|paren|parar|cancelar|detener|suspender)(?: (?:de|con))?"
    rf"(?: (?:los|estos|sus|tus|mas))? {_ES_MESSAGES}",
    rf"no (?:quiero|deseo) (?:recibir |que me (?:manden|envien) )?(?:mas )?{_ES_MESSAGES}(?: mas)?(?: de ustedes)?",
    r"no (?:quiero|deseo) que me (?:escriban|manden|envien|contacten|molesten)(?: mas)?",
    r"(?:darme|dame|denme|deme|me doy|dar|quiero darme|me quiero dar) de baja",
    r"(?:quitenme|quiteme|quitame|borrenme|borreme|borrame|sacame|saquenme|saqueme) de (?:la|su|esta|tu|sus) lista"
    rf"(?: de {_ES_MESSAGES})?",
    r"(?:dejame|dejenme|dejeme) en paz",
    r"numero equivocado|(?:se equivoco|se equivocaron|esta equivocado) de numero"
    r"|(?:tiene|tienen) el numero equivocado",
]
_REVOCATION = re.compile("|".join(f"(?:{r})" for r in _REVOCATIONS))

# "Don't text me (back)" anywhere in the message: with a safety reason it means do not text first.
_DONT_TEXT = re.compile(
    r"\b(?:(?:dont|do not|never|pls dont|please dont|stop|no more) (?:text|txt|texting|message|msg|call|calling|write"
    r"|contact|send|reply|answer)(?: (?:me|us|back|this number|here))*"
    rf"|no (?:me |)(?:{_ES_VERBS}|contesten|conteste|respondan|responda)(?: (?:mas|aqui|a este numero))*)\b"
)
_PERSON = (
    r"(?:he|she|they|someone|somebody|my (?:husband|boyfriend|bf|man|wife|girlfriend|gf|partner|ex|mom|dad"
    r"|mother|father|family|parents|roommate)|him|her|el|ella|mi (?:esposo|marido|novio|pareja|esposa|novia"
    r"|mama|papa|familia|ex)|alguien)"
)
# Why texts are not safe: someone reads the phone, is with her, or would find out.
_SAFETY_REASONS = [
    rf"{_PERSON} (?:checks|check|checking|looks at|look at|looks through|goes through|go through|reads|read|sees|see"
    r"|watches|watch|takes|took|grabs|uses|monitors|has|tracks|going through|looking at)(?: \w+)? "
    r"(?:my|the|our|this) (?:phone|texts|messages|cell|cellphone|msgs)",
    rf"{_PERSON} (?:will|might|could|would|can|gonna|is going to|may)"
    r" (?:see|find out|know|read|kill me|hurt me|get mad)",
    rf"{_PERSON} (?:is|s|are|re|esta|estan) (?:here|home|around|next to me|with me|aqui|en casa|conmigo)",
    r"(?:its|it is|is|not|isnt|no es|no esta) (?:not )?(?:safe|seguro|segura)|not my (?:own )?phone"
    r"|(?:shared|share|sharing) (?:a |this |the )?phone|no es mi (?:telefono|celular)"
    r"|(?:compartimos|comparto) (?:el |este |)(?:telefono|celular)",
    rf"{_PERSON} (?:revisa|revisan|ve|ven|lee|leen|mira|miran|checa|checan|agarra|usa|esculca)(?: \w+)? "
    r"(?:mi|mis|el) (?:telefono|celular|cel|mensajes|textos)",
    r"(?:se|me) (?:puede|pueden|va a|van a) (?:dar cuenta|ver|enterar)",
]
_SAFETY_REASON = re.compile("|".join(f"(?:{r})" for r in _SAFETY_REASONS))


def classify(text: str, *, opted_out: bool = False) -> Compliance | None:
    """The compliance keyword a message is, if the whole message is one."""
    norm = normalize(text)
    if norm in _HELP_WORDS:
        return Compliance.HELP
    if norm in _START_WORDS or (opted_out and norm in _OPT_IN_ANSWERS):
        return Compliance.START
    if norm in _SAFE_WORDS:
        return Compliance.SAFE
    if norm in _NOT_SAFE_WORDS:
        return Compliance.NOT_SAFE
    if _DELETE.fullmatch(norm):
        return Compliance.DELETE
    if _asks_not_to_text_first(norm):
        return Compliance.REPLY_ONLY
    if _is_revocation(norm):
        return Compliance.STOP
    return None


def asks_not_to_text_first(text: str) -> bool:
    """A "don't text me" with a safety reason ("dont text me back he checks my phone"), anywhere in the text."""
    return _asks_not_to_text_first(normalize(text))


def _asks_not_to_text_first(norm: str) -> bool:
    return _DONT_TEXT.search(norm) is not None and _SAFETY_REASON.search(norm) is not None


def _is_revocation(norm: str) -> bool:
    """STOP or a synonym ("stop all", "STOP STOP"), or a whole message that means "stop texting me"."""
    words = norm.split()
    while words and words[0] in _FILLERS:
        words.pop(0)
    while words and words[-1] in _FILLERS:
        words.pop()
    if not words:
        return False
    if set(words) <= _STOP_WORDS | {"all"} and set(words) & _STOP_WORDS:
        return True
    return _REVOCATION.fullmatch(" ".join(words)) is not None
