"""What happens to stored personal data over time: purge (retention), backup, DATA_KEY rotation.

A purge blanks content and keeps rows: a message or note keeps its time, kind and links with its
body (and a provider's error text) set to NULL; an anonymised resident keeps ZIP, language and every
row the reports count, and loses phone, phone_lookup, chat_key and the link to a proven number.
So the reports (bot/reports.py) read the same afterwards. One-time codes are deleted outright.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot.casework import audit
from bot.config import ConfigError
from bot.storage import crypto
from bot.storage.crypto import SecretText, UnreadableValue, phone_lookups
from bot.storage.db import Database, rows_changed
from bot.storage.models import Base, ConversationSession, FollowUp, Message, Note, PhoneCode, Referral, Resident
from bot.storage.statuses import FollowUpStatus

BATCH = 500  # rows per transaction when rotating: a running server waits at most one batch
AGE = re.compile(r"(\d+)([dw])")


# -- purge -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Purged:
    messages: int  # bodies removed
    notes: int  # bodies removed
    sessions: int  # conversation states deleted (they hold saved answers)
    follow_ups: int  # pending check-ins cancelled: nobody left to text
    residents: int  # anonymised
    codes: int = 0  # one-time codes deleted

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _Rows:
    """The rows a purge reaches, as conditions on each table."""

    messages: ColumnElement[bool]
    notes: ColumnElement[bool]
    sessions: ColumnElement[bool]
    residents: ColumnElement[bool]  # to anonymise
    codes: ColumnElement[bool]


def parse_age(raw: str) -> timedelta:
    """'180d' or '26w'; at least one day."""
    match = AGE.fullmatch(raw.strip().lower())
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"{raw!r} is not an age like 180d or 26w")
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    return timedelta(days=days)


def purge_older_than(db: Database, now: datetime, age: timedelta, dry_run: bool = False) -> Purged:
    """Bodies and notes older than `age`, and residents with no activity for that long."""
    cutoff = now - age
    recent_message = exists().where(Message.resident_id == Resident.id, Message.created_at >= cutoff)
    recent_note = exists().where(
        Referral.resident_id == Resident.id, Note.referral_id == Referral.id, Note.created_at >= cutoff
    )
    rows = _Rows(
        messages=Message.created_at < cutoff,
        notes=Note.created_at < cutoff,
        sessions=ConversationSession.last_activity_at < cutoff,
        residents=and_(
            func.coalesce(Resident.last_seen_at, Resident.created_at) < cutoff, ~recent_message, ~recent_note
        ),
        codes=PhoneCode.created_at < cutoff,
    )
    with db.transaction() as s:
        return _purge(s, rows, now, dry_run, scope="older_than", days=age.days)


def purge_resident(db: Database, now: datetime, e164: str, dry_run: bool = False) -> Purged | None:
    """Everything one person wrote and their number, at their request; None when nobody has the number."""
    with db.transaction() as s:
        ids = _person(s, e164)
        if not ids:
            return None
        rows = _Rows(
            messages=Message.resident_id.in_(ids),
            notes=Note.referral_id.in_(select(Referral.id).where(Referral.resident_id.in_(ids))),
            sessions=ConversationSession.resident_id.in_(ids),
            residents=Resident.id.in_(ids),
            codes=PhoneCode.resident_id.in_(ids) | PhoneCode.phone_lookup.in_(phone_lookups(e164)),
        )
        return _purge(s, rows, now, dry_run, scope="resident", resident_id=ids[0])


def _person(s: Session, e164: str) -> list[int]:
    """The residents with this number, and the web chat visitors who proved it with a code (linked
    to its record): all of them are this person's conversations."""
    ids = list(s.scalars(select(Resident.id).where(Resident.with_phone(e164)).order_by(Resident.id)))
    if not ids:
        return []
    visitors = s.scalars(select(Resident.id).where(Resident.linked_resident_id.in_(ids)).order_by(Resident.id))
    return ids + [v for v in visitors if v not in ids]


def _purge(
    s: Session, rows: _Rows, now: datetime, dry_run: bool, resident_id: int | None = None, **detail: Any
) -> Purged:
    """Blank the rows picked, residents last: the other steps find them by not yet anonymised."""
    anonymise = and_(rows.residents, Resident.anonymized_at.is_(None))
    to_anonymise = select(Resident.id).where(anonymise)
    written = Message.body.is_not(None) | Message.error_message.is_not(None)  # a provider's error text too
    purged = Purged(
        messages=_change(s, Message, and_(rows.messages, written), {"body": None, "error_message": None}, dry_run),
        notes=_change(s, Note, and_(rows.notes, Note.body.is_not(None)), {"body": None}, dry_run),
        sessions=_change(
            s, ConversationSession, or_(rows.sessions, ConversationSession.resident_id.in_(to_anonymise)), None, dry_run
        ),
        follow_ups=_change(
            s,
            FollowUp,
            and_(FollowUp.status == FollowUpStatus.PENDING, FollowUp.resident_id.in_(to_anonymise)),
            {"status": FollowUpStatus.CANCELLED},
            dry_run,
        ),
        residents=_change(
            s,
            Resident,
            anonymise,
            {"phone": None, "phone_lookup": None, "chat_key": None, "linked_resident_id": None, "anonymized_at": now},
            dry_run,
        ),
        codes=_change(s, PhoneCode, rows.codes, None, dry_run),
    )
    if not dry_run:
        audit.record(s, "retention.purged", now, resident_id=resident_id, **detail, **purged.as_dict())
    return purged


def _change(
    s: Session, model: type[Base], where: ColumnElement[bool], values: dict[str, Any] | None, dry_run: bool
) -> int:
    """Update (or, without values, delete) the rows `where` picks; a dry run only counts them."""
    if dry_run:
        return s.scalar(select(func.count()).select_from(model).where(where)) or 0
    stmt = delete(model) if values is None else update(model).values(values)
    return rows_changed(s, stmt.where(where).execution_options(synchronize_session=False))


# -- backup ----------------------------------------------------------------------------------


class BackupError(Exception):
    """The backup cannot be made; the message is one line for the operator."""


def backup_sqlite(database_url: str, target: Path) -> int:
    """A consistent copy of a live SQLite database at `target`; returns its size in bytes.

    sqlite3's online backup reads one snapshot while the server goes on writing (WAL). The copy
    is written beside the target and renamed into place, so a failed backup never leaves half a
    file, and it is readable by the owner only: it holds everything the database holds.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError(
            "DATABASE_URL is PostgreSQL: back it up with pg_dump -Fc "
            "(pg_dump -Fc -f peaceline.dump postgresql://user@host/db)"
        )
    source = Path(url.database or "")
    if not url.database or url.database == ":memory:" or not source.is_file():
        raise BackupError(f"no SQLite database file at {url.database or '(none)'}")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    if target.exists() and target.resolve() == source.resolve():
        raise BackupError("the backup would overwrite the database itself")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    partial.touch(mode=0o600)
    try:
        _copy(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size


def _copy(source: Path, copy: Path) -> None:
    with closing(sqlite3.connect(source, timeout=10)) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
        # One self-contained file: no -wal or -shm beside it.
        dst.execute("PRAGMA journal_mode=DELETE")
        result = dst.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise BackupError(f"the copy failed its integrity check: {result}")


# -- DATA_KEY: checking and rotating ---------------------------------------------------------


def secret_columns() -> list[Column[Any]]:
    """Every column stored encrypted when DATA_KEY is set."""
    return [c for t in Base.metadata.sorted_tables for c in t.columns if isinstance(c.type, SecretText)]


def check_key(db: Database) -> None:
    """Stop at start, not at the first text, when DATA_KEY cannot read what is stored: a server
    running on a wrong key would write data that the right key can no longer read."""
    with db.sessions() as s:
        for column in secret_columns():
            latest = s.scalar(
                select(type_coerce(column, Text)).where(column.is_not(None)).order_by(column.table.c.id.desc()).limit(1)
            )
            if latest is None:
                continue
            try:
                crypto.decode(latest)
            except UnreadableValue as exc:
                raise ConfigError(str(exc)) from None


def rotate_key(db: Database, batch: int = BATCH) -> dict[str, Counter[str]]:
    """Re-encrypt every stored value with the first DATA_KEY (plain ones too) and recompute every
    phone lookup; safe to run again, and to stop and rerun (each batch commits on its own)."""
    if not crypto.enabled():
        raise ConfigError("DATA_KEY is not set: there is no key to rotate to")
    return {f"{c.table.name}.{c.name}": _rotate_column(db, c, batch) for c in secret_columns()}


def _rotate_column(db: Database, column: Column[Any], batch: int) -> Counter[str]:
    table, last = column.table, 0
    phone = column is Resident.__table__.c.phone
    counts: Counter[str] = Counter({"re-encrypted": 0, "encrypted": 0, **({"lookups": 0} if phone else {})})
    values: dict[str, Any] = {column.name: bindparam("b_value", type_=Text)}  # stored form: no re-encoding
    if phone:
        values["phone_lookup"] = bindparam("b_lookup")
    stmt = update(table).where(table.c.id == bindparam("b_id")).values(values)
    while True:
        with db.transaction() as s:
            rows = s.execute(
                select(table.c.id, type_coerce(column, Text))
                .where(table.c.id > last, column.is_not(None))
                .order_by(table.c.id)
                .limit(batch)
                .with_for_update()
            ).all()
            if not rows:
                return counts
            params = []
            for row_id, stored in rows:
                plain = crypto.decode(stored)
                counts["re-encrypted" if stored.startswith(crypto.ENCRYPTED) else "encrypted"] += 1
                params.append({"b_id": row_id, "b_value": crypto.encode(plain)})
                if phone:
                    params[-1]["b_lookup"] = crypto.phone_lookup(plain)
                    counts["lookups"] += 1
            s.connection().execute(stmt, params)
            last = rows[-1][0]
