"""How the line may reach a resident: the contact preference, and the rule every outbound text obeys."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

# A resident who asked not to be texted first may still be answered this long after her own last text.
REPLY_WINDOW = timedelta(hours=24)


class ContactPreference(StrEnum):
    ANY = "any"  # 1: the line may text first (check-ins, a caseworker's texts)
    REPLY_ONLY = "reply_only"  # 2: only answer when I text first ("don't text me, he checks my phone")
    NONE = "none"  # 3: nothing but direct answers to my own texts


def may_text_first(preference: str | None, last_text_at: datetime | None, now: datetime) -> bool:
    """May the line send a text the resident did not just ask for (a check-in, a caseworker's text)?"""
    if preference in (None, ContactPreference.ANY):
        return True
    if preference == ContactPreference.REPLY_ONLY:
        return last_text_at is not None and now - last_text_at <= REPLY_WINDOW
    return False
