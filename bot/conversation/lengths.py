"""How long the bot's texts are, in SMS segments as they go out: what `peaceline check` prints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from bot.conversation.engine import Engine
from bot.conversation.segments import segments, to_gsm

MAX_MEAN = 1.3  # aim: about one segment a reply
MAX_SEGMENTS = 3  # never more


@dataclass(frozen=True)
class Lengths:
    lang: str
    replies: int
    mean: float
    worst: str  # where the longest reply comes from ("intake.menu", "crisis_abuse")
    worst_segments: int

    def __str__(self) -> str:
        return (
            f"{self.lang}: {self.replies} replies, {self.mean:.2f} SMS segments on average "
            f"(aim {MAX_MEAN}), longest {self.worst_segments} ({self.worst})"
        )

    @property
    def ok(self) -> bool:
        return self.mean <= MAX_MEAN and self.worst_segments <= MAX_SEGMENTS


def measure(engine: Engine, now: datetime, zip_code: str | None, *, fold_accents: bool = True) -> list[Lengths]:
    """Every reply in every language, as sent by SMS, measured from `zip_code` at `now`."""
    out = []
    for lang in engine.languages:
        counted = [
            (where, segments(to_gsm(text, fold_accents=fold_accents)))
            for where, text in engine.every_reply(lang, now, zip_code)
        ]
        worst, most = max(counted, key=lambda c: c[1])
        out.append(Lengths(lang, len(counted), sum(n for _, n in counted) / len(counted), worst, most))
    return out


def reference_time(now: datetime, engine: Engine) -> datetime:
    """The next Tuesday at 10 am in the program's time zone: a working morning, lists mostly open."""
    local = now.astimezone(engine.tz)
    days = (1 - local.weekday()) % 7 or 7
    return datetime.combine(local.date() + timedelta(days=days), time(10, 0), tzinfo=engine.tz)
