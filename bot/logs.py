"""Structured logs: one line per event, numbers masked, bodies never at INFO."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from bot.messaging.phones import mask_text

logger = logging.getLogger("peaceline")


class MaskingFilter(logging.Filter):
    """Last line of defence: masks any phone-like digits in any record, from any library."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure(level: int = logging.INFO) -> None:
    """Install the one-line formatter and the masking filter on the root logger."""
    root = logging.getLogger()
    if any(isinstance(f, MaskingFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    handler.addFilter(MaskingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # The twilio client logs whole request bodies (numbers, texts) at INFO and DEBUG.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


def event(name: str, **fields: Any) -> None:
    """Log one event as `name key=value …`; callers pass masked numbers and no bodies."""
    parts = " ".join(f"{k}={v}" for k, v in fields.items())
    logger.info(f"{name} {parts}".strip())
