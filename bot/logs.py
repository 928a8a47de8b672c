"""Structured logs: one line per event, numbers masked, bodies never at INFO."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


class Heartbeat(logging.Filter):
    """APScheduler's lines for every tick ("Running job …", "… executed successfully") go to DEBUG:
    at INFO they were most of the log. Kept only when DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= logging.getLogger().getEffectiveLevel()


def _handler(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(LineFormatter())
    handler.addFilter(MaskingFilter())
    return handler


def _ours(handler: logging.Handler) -> bool:
    return any(isinstance(f, MaskingFilter) for f in handler.filters)


def configure(level: int = logging.INFO) -> None:
    """Install the one-line formatter and the masking filter on the root logger."""
    root = logging.getLogger()
    if any(_ours(h) for h in root.handlers):
        return
    root.addHandler(_handler(logging.StreamHandler(sys.stderr)))
    _levels(level)


def _levels(level: int) -> None:
    logging.getLogger().setLevel(level)
    # The twilio client logs whole request bodies (numbers, texts) at INFO and DEBUG.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    heartbeat = logging.getLogger("apscheduler.executors.default")
    if not any(isinstance(f, Heartbeat) for f in heartbeat.filters):
        heartbeat.addFilter(Heartbeat())


@contextmanager
def to_file(path: Path) -> Iterator[None]:
    """Log to `path` instead of the terminal (`peaceline chat`: logs stay out of the conversation)."""
    root = logging.getLogger()
    console = [h for h in root.handlers if _ours(h)]
    for handler in console:
        root.removeHandler(handler)
    file = _handler(logging.FileHandler(path, encoding="utf-8"))
    root.addHandler(file)
    _levels(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(file)
        file.close()
        for handler in console:
            root.addHandler(handler)


def event(name: str, **fields: Any) -> None:
    """Log one event as `name key=value …`; callers pass masked numbers and no bodies."""
    parts = " ".join(f"{k}={v}" for k, v in fields.items())
    logger.info(f"{name} {parts}".strip())
