"""The database engine and sessions: SQLite (WAL, one writer) or PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, Executable, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.config import make_private_dir


def _sqlite_setup(engine: Engine) -> None:
    """WAL, a busy timeout and BEGIN IMMEDIATE, so writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event own transactions
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A deferred transaction that upgrades to a write can fail with "database is locked"
        # whatever the timeout; taking the write lock up front makes writers wait their turn.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


POOL_SIZE = 5  # PostgreSQL connections kept open (more with more senders); as many again may open under load


def make_engine(url: str, connections: int = 2 * POOL_SIZE, **kwargs: Any) -> Engine:
    """`connections`: the most PostgreSQL connections a process may hold at once (SQLite keeps
    SQLAlchemy's own pool: its writers queue for one lock anyway)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False}, **kwargs)
        _sqlite_setup(engine)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=max(POOL_SIZE, connections - POOL_SIZE),  # kept open once opened: no reconnect a send
        max_overflow=POOL_SIZE,
        pool_timeout=2,
        connect_args={"connect_timeout": 2},
        **kwargs,
    )


def _private_file(path: Path) -> None:
    """Create the SQLite file owner-only (0600) in an owner-only folder (0700), before SQLite would
    make it world-readable; SQLite gives its -wal and -shm files the database file's mode."""
    make_private_dir(path.parent)
    with suppress(FileExistsError):  # an existing database keeps the mode its operator gave it
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class _WriterLock:
    """SQLite's one writer, queued fairly: an exclusive flock on a file beside the database, taken
    before BEGIN IMMEDIATE and let go after the commit. A waiting process wakes as soon as the other
    lets go, where SQLite's busy handler would sleep 1, 2, 5, 10 … 25 ms between tries (with two
    workers that sleeping was half of a worker's time). Re-entrant within a thread; one descriptor per
    process and thread, since a descriptor inherited across fork would share the lock."""

    def __init__(self, path: Path) -> None:
        self.path, self._local = path, threading.local()

    @contextmanager
    def held(self) -> Iterator[None]:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.fd, local.pid, local.depth = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid(), 0
        if local.depth == 0:
            fcntl.flock(local.fd, fcntl.LOCK_EX)
        local.depth += 1
        try:
            yield
        finally:
            local.depth -= 1
            if local.depth == 0:
                fcntl.flock(local.fd, fcntl.LOCK_UN)


class Database:
    """An engine and its session factory; one per app."""

    def __init__(self, url: str, connections: int = 2 * POOL_SIZE) -> None:
        self.url = url
        self.engine = make_engine(url, connections)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        parsed = make_url(url)
        file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
        self._writer = _WriterLock(Path(f"{parsed.database}.lock")) if file else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._writer.held() if self._writer else nullcontext(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core connection in one transaction: committed on success, rolled back on error. Taken from
        the pool before SQLite's writer lock and given back after it, so the lock covers the transaction only."""
        with self.engine.connect() as conn, self._writer.held() if self._writer else nullcontext(), conn.begin():
            yield conn

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # any driver error means "down" to the health check
            return False

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run (tests, benchmarks); dropped after, whatever happens."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(admin_url)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def rows_changed(s: Session, stmt: Executable) -> int:
    """Run an UPDATE or DELETE; how many rows it touched."""
    result = s.execute(stmt)
    assert isinstance(result, CursorResult)  # DML gives a cursor result; Session.execute types it as Result
    return result.rowcount
