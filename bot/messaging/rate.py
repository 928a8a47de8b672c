"""How fast texts may leave: the sender's type, its rate, and a token bucket that keeps to it."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from enum import StrEnum


class SenderType(StrEnum):
    LONG_CODE = "long code"
    TOLL_FREE = "toll-free"
    SHORT_CODE = "short code"
    MESSAGING_SERVICE = "Messaging Service"


# Messages a second a sender of each type may send (Twilio's and the carriers' limits).
DEFAULT_MPS: dict[SenderType, float] = {
    SenderType.LONG_CODE: 1,
    SenderType.TOLL_FREE: 3,
    SenderType.SHORT_CODE: 100,
    SenderType.MESSAGING_SERVICE: 100,
}
TOLL_FREE = re.compile(r"\+1(800|833|844|855|866|877|888)\d{7}")
SHORT_CODE = re.compile(r"\d{5,6}")


def sender_type(from_number: str | None, messaging_service_sid: str | None) -> SenderType:
    """What kind of sender texts go out from (a Messaging Service, when set, is what Twilio uses)."""
    if messaging_service_sid:
        return SenderType.MESSAGING_SERVICE
    number = (from_number or "").strip()
    if SHORT_CODE.fullmatch(number):
        return SenderType.SHORT_CODE
    return SenderType.TOLL_FREE if TOLL_FREE.fullmatch(number) else SenderType.LONG_CODE


class TokenBucket:
    """`rate` tokens a second, one saved up at most: no burst, so a sender held up never sends
    faster than the rate to catch up. `take` reserves the next token and waits until it is due,
    outside the lock, so threads leave one by one at the rate. Thread-safe."""

    def __init__(
        self, rate: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.tokens, self.stamp = 1.0, clock()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Wait for a token; returns the seconds waited."""
        with self.lock:
            now = self.clock()
            self.tokens = min(1.0, self.tokens + (now - self.stamp) * self.rate) - 1
            self.stamp = now
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait:
            self.sleep(wait)
        return wait
