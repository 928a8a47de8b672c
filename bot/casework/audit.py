"""Audit rows for what staff do: who looked at or changed what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.storage.models import AuditEvent


def record(
    s: Session,
    action: str,
    at: datetime,
    *,
    actor_id: int | None = None,
    resident_id: int | None = None,
    referral_id: int | None = None,
    **detail: Any,
) -> None:
    """Add one audit row to the caller's transaction, so it commits with the change it describes."""
    s.add(
        AuditEvent(
            at=at, action=action, actor_id=actor_id, resident_id=resident_id, referral_id=referral_id, detail=detail
        )
    )
