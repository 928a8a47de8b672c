"""What a data-driven conversation case says about the bot's replies (engine cases and transcripts)."""

from __future__ import annotations

from bot.conversation.flows import fold
from bot.conversation.segments import segments


def check_replies(turn: dict, replies: list[str], context: str) -> None:
    """Check `expect`, `not`, `in_order`, `silent` and `replies` of one turn, and that every reply fits 4 segments.

    Words are compared without case or accents: by SMS a Spanish text goes out with á, í, ó, ú
    unaccented when that saves a segment (segments.to_gsm), and a case is written once for both."""
    said = fold("\n".join(replies))
    for reply in replies:
        assert segments(reply) <= 4 and len(reply) <= 1600, f"reply too long {context}"
    if turn.get("silent"):
        assert replies == [], context
    else:
        assert replies, context
    for expected in turn.get("expect", []):
        assert fold(str(expected)) in said, f"missing {expected!r} {context}"
    for unwanted in turn.get("not", []):
        assert fold(str(unwanted)) not in said, f"unwanted {unwanted!r} {context}"
    at = 0
    for expected in turn.get("in_order", []):  # each after the one before: a ranking
        found = said.find(fold(str(expected)), at)
        assert found >= 0, f"missing {expected!r} after position {at} {context}"
        at = found + len(fold(str(expected)))
    if "replies" in turn:
        assert len(replies) == turn["replies"], context
