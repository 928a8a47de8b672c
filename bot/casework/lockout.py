"""The login lockout: wrong passwords counted per account and per client, in the database.

- Every wrong password adds one to its (account, client) row; a client is the address the
  request came from (as ProxyFix sees it). An account's count is the sum over its clients, a
  client's the sum over the accounts it tried. Failures older than FORGET_AFTER no longer count.
- From FREE_TRIES failures on, an account makes the clients that failed against it wait, twice as
  long after each further failure (FIRST_WAIT up to MAX_WAIT), counted from its last failure.
  A client that has not failed against the account is never held by the account's count, so
  nobody can lock a caseworker out: she logs in from her own phone while someone else guesses.
- A client with CLIENT_FREE_TRIES failures across all accounts waits the same way on any account.
- A right password clears that client's failures against that account.

Unknown emails are counted exactly like real ones, so waiting says nothing about which exist.
Nothing here sleeps: a wait is answered at once (429 with Retry-After) and costs no worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.storage import counts
from bot.storage.db import rows_changed
from bot.storage.models import LoginFailure

FREE_TRIES = 5
CLIENT_FREE_TRIES = 20
FIRST_WAIT = timedelta(seconds=30)
MAX_WAIT = timedelta(hours=1)
FORGET_AFTER = timedelta(days=1)
_MAX_DOUBLINGS = 20  # FIRST_WAIT * 2**20 is far past MAX_WAIT; stops the power from growing without end


@dataclass(frozen=True)
class Keys:
    account: str
    client: str


def keys(secret: str, email: str, client: str) -> Keys:
    """Keyed hashes of the (normalised) email and the client's address: the table holds neither."""
    return Keys(counts.keyed(secret, "account", email), counts.keyed(secret, "client", client))


@dataclass(frozen=True)
class Failures:
    """What counts against one attempt."""

    account: int = 0
    account_last: datetime | None = None
    client: int = 0
    client_last: datetime | None = None
    pair: int = 0  # this client's failures against this account


def wait_after(failures: int, free: int) -> timedelta | None:
    """The wait after the last of `failures` wrong tries, or None while under `free`."""
    if failures < free:
        return None
    return min(FIRST_WAIT * 2 ** min(failures - free, _MAX_DOUBLINGS), MAX_WAIT)


def retry_after(f: Failures, now: datetime) -> timedelta | None:
    """How long this client must wait before trying this account; None: it may try now."""
    left = timedelta(0)
    account_wait = wait_after(f.account, FREE_TRIES)
    if f.pair and account_wait and f.account_last:  # only a client that failed here is held by the account
        left = max(left, f.account_last + account_wait - now)
    client_wait = wait_after(f.client, CLIENT_FREE_TRIES)
    if client_wait and f.client_last:
        left = max(left, f.client_last + client_wait - now)
    return left if left > timedelta(0) else None


def failures(s: Session, k: Keys, now: datetime) -> Failures:
    recent = LoginFailure.last_failed_at >= now - FORGET_AFTER
    total = (func.coalesce(func.sum(LoginFailure.failures), 0), func.max(LoginFailure.last_failed_at))
    account, account_last = s.execute(select(*total).where(LoginFailure.account_key == k.account, recent)).one()
    client, client_last = s.execute(select(*total).where(LoginFailure.client_key == k.client, recent)).one()
    pair = (
        s.scalar(
            select(LoginFailure.failures).where(
                LoginFailure.account_key == k.account, LoginFailure.client_key == k.client, recent
            )
        )
        or 0
    )
    return Failures(account, account_last, client, client_last, pair)


def record_failure(s: Session, k: Keys, now: datetime) -> None:
    """One more wrong password from this client against this account (atomic across processes)."""
    cutoff = now - FORGET_AFTER
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(LoginFailure).values(account_key=k.account, client_key=k.client, failures=1, last_failed_at=now)
    s.execute(
        statement.on_conflict_do_update(
            index_elements=["account_key", "client_key"],
            set_={
                "failures": case((LoginFailure.last_failed_at < cutoff, 1), else_=LoginFailure.failures + 1),
                "last_failed_at": now,
            },
        )
    )
    s.execute(delete(LoginFailure).where(LoginFailure.last_failed_at < cutoff))


def clear_client(s: Session, k: Keys) -> None:
    """A right password: this client's failures against this account are forgiven."""
    s.execute(delete(LoginFailure).where(LoginFailure.account_key == k.account, LoginFailure.client_key == k.client))


def clear_account(s: Session, account_key: str) -> int:
    """Unlock: every client's failures against the account go; returns how many clients had some."""
    return rows_changed(s, delete(LoginFailure).where(LoginFailure.account_key == account_key))


def account_failures(s: Session, account_key: str, now: datetime) -> int:
    total = s.scalar(
        select(func.coalesce(func.sum(LoginFailure.failures), 0)).where(
            LoginFailure.account_key == account_key, LoginFailure.last_failed_at >= now - FORGET_AFTER
        )
    )
    return total or 0
