"""peaceline: an SMS and web-chat referral line.

`create_app` is imported lazily so that `import bot.conversation.engine` (the pure conversation engine)
pulls in no Flask, database or twilio code.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from bot.app import create_app

        return create_app
    raise AttributeError(f"module 'bot' has no attribute {name!r}")
