"""What a data-driven conversation case says about the bot's replies (engine cases and transcripts)."""
from __future__ import annotations

from bot.segments import segments


def check_replies(turn: dict, replies: list[str], context: str) -> None:
    """Check `expect`, `not`, `in_order`, `silent` and `replies` of one turn, and that every reply fits 4 segments."""
    said = "\n".join(replies).lower()
    for reply in replies:
        assert segments(reply) <= 4 and len(reply) <= 1600, f"reply too long {context}"
    if turn.get("silent"):
        assert replies == [], context
    else:
        assert replies, context
    for expected in turn.get("expect", []):
        assert str(expected).lower() in said, f"missing {expected!r} {context}"
    for unwanted in turn.get("not", []):
        assert str(unwanted).lower() not in said, f"unwanted {unwanted!r} {context}"
    at = 0
    for expected in turn.get("in_order", []):   # each after the one before: a ranking
        found = said.find(str(expected).lower(), at)
        assert found >= 0, f"missing {expected!r} after position {at} {context}"
        at = found + len(str(expected))
    if "replies" in turn:
        assert len(replies) == turn["replies"], context
