"""How the line may reach a resident: the contact preference, and the rule every outbound text obeys.

The resident decides. Asked when a referral opens ("Is it safe for us to text this number later?"),
changed any time by SAFE / NOT SAFE (SEGURO / NO SEGURO), the preference is:

1. ANY: the line may text first (check-ins, a caseworker's texts, a canvass welcome, a code).
2. REPLY_ONLY: only answer when I text first. A caseworker may answer within REPLY_WINDOW of her own
   last text; nothing else the line starts goes out.
3. NONE: nothing but the bot's direct answers to her own texts.

Until she answers, the default is ANY, but REPLY_ONLY in the safety, violence and loss flows and
after any crisis (`default_for`). `may_text_first` is the one rule; bot/messaging/outbound.py
applies it to every text the line starts, and refuses a forbidden one with the status
`held_contact_preference` (it is stored, never silently dropped).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

# A resident who asked not to be texted first may still be answered by a person this long after her own last text.
REPLY_WINDOW = timedelta(hours=24)
# Needs where a text days later could be read by the wrong person: the default is REPLY_ONLY.
GUARDED_NEEDS = frozenset({"safety", "violence", "loss"})


class ContactPreference(StrEnum):
    ANY = "any"  # 1: the line may text first (check-ins, a caseworker's texts)
    REPLY_ONLY = "reply_only"  # 2: only answer when I text first ("don't text me, he checks my phone")
    NONE = "none"  # 3: nothing but direct answers to my own texts


class Outgoing(StrEnum):
    """The kinds of text the line starts (Message.kind), each held or not by the preference."""

    CASEWORKER = "caseworker"  # a person answering her from the inbox
    FOLLOWUP = "followup"  # a check-in from the scheduler
    CODE = "code"  # the web chat's one-time code to a number a visitor typed
    WELCOME = "welcome"  # a canvass welcome to a number a canvasser took down
    NOTICE = "notice"  # to staff, about a referral: never to the resident, so no preference applies


def may_text_first(preference: str | None, last_text_at: datetime | None, now: datetime, kind: str) -> bool:
    """May the line send a text of `kind` that the resident did not just ask for?"""
    if kind == Outgoing.NOTICE or preference in (None, ContactPreference.ANY):
        return True
    if preference == ContactPreference.REPLY_ONLY and kind == Outgoing.CASEWORKER:
        return last_text_at is not None and now - last_text_at <= REPLY_WINDOW
    return False


def default_for(category: str | None, crisis: bool) -> ContactPreference:
    """The preference until the resident answers: do not text first after a crisis or in a guarded need."""
    return ContactPreference.REPLY_ONLY if crisis or category in GUARDED_NEEDS else ContactPreference.ANY
