"""Counts kept in the database, so every worker process sees the same number.

Keys are keyed hashes (HMAC-SHA256 with SECRET_KEY): the tables never hold an address or an
email, and nobody without the key can tell whose count a row is.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.storage.models import RateCount

KEEP_WINDOWS = timedelta(days=1)  # older windows are deleted as new counts come in


def keyed(secret: str, kind: str, value: str) -> str:
    """A stable, secret-keyed stand-in for `value` (an address, an email) of one `kind`."""
    return hmac.new(secret.encode(), f"{kind}\n{value}".encode(), hashlib.sha256).hexdigest()


def bump(s: Session, scope: str, key: str, window_start: datetime) -> int:
    """Add one to the key's count in this window, atomically, and return the new count."""
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(RateCount).values(scope=scope, key=key, window_start=window_start, count=1)
    statement = statement.on_conflict_do_update(
        index_elements=["scope", "key", "window_start"], set_={"count": RateCount.count + 1}
    )
    count = s.execute(statement.returning(RateCount.count)).scalar_one()
    s.execute(delete(RateCount).where(RateCount.scope == scope, RateCount.window_start < window_start - KEEP_WINDOWS))
    return count
