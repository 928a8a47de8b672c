"""A Core statement compiled once for a dialect and run on the DB-API cursor of a SQLAlchemy connection.

The webhook's statements are small: SQLAlchemy's work per call (the cache key, the compiled-cache
lookup, the execution context, the result object) cost more than the database's own work on them.
`Prepared` does that work once: it keeps the SQL, the order of its parameters, and the types' own bind
and result processors (so UTC datetimes, JSON and encrypted bodies are stored exactly as the ORM stores
them), then each call is one `cursor.execute`. It runs inside the connection's transaction (BEGIN
IMMEDIATE on SQLite, the row locks on PostgreSQL), so it commits or rolls back with the rest.

A statement with an expanding IN (a list bound at run time) cannot be prepared: name each value.
"""

from __future__ import annotations

import copy
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None
BATCHED = "peaceline.batched"  # Connection.info: statements wait for a pipeline's sync (turns.batched)


class Prepared:
    """One statement for one dialect: `run` returns its rows as named tuples (none for a plain DML)."""

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=_positional(dialect))
        assert isinstance(compiled, SQLCompiler)
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("an expanding IN cannot be prepared: bind each value by name")
        self.sql = compiled.string
        # Columns left out of an INSERT take their scalar default, as Core's execution would give them.
        defaults = {column.key: column for column in (*compiled.insert_prefetch, *compiled.update_prefetch)}
        # Each parameter in the order the driver takes them (a name may come twice).
        order = list(compiled.positiontup or ())
        binds = {
            name: _default(defaults[name], dialect) if name in defaults else self._bind(compiled, name, dialect)
            for name in dict.fromkeys(order)
        }
        self._plan = [(name, *binds[name]) for name in order]
        columns = _columns(stmt)
        results = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self._results = [(i, process) for i, process in enumerate(results) if process is not None]
        self._columns = len(columns)
        self._row = _row_type([column.key for column in columns])

    @staticmethod
    def _bind(compiled: SQLCompiler, name: str, dialect: Dialect) -> tuple[Any, Processor]:
        """A parameter's fixed value (a constant in the statement), if any, and its type's processor."""
        bind = next(b for b in compiled.binds.values() if compiled.bind_names[b] == name)
        fixed = bind.value if not bind.required else _REQUIRED
        return fixed, bind.type.dialect_impl(dialect).bind_processor(dialect)

    def _params(self, given: Mapping[str, Any]) -> list[Any]:
        values = [
            (given[name] if fixed is _REQUIRED else given.get(name, fixed), process)
            for name, fixed, process in self._plan
        ]
        return [process(value) if process is not None else value for value, process in values]

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Execute once with `params`; the rows it returns, processed to Python values."""
        return self.send(conn, params)()

    def send(self, conn: Connection, params: Mapping[str, Any]) -> Callable[[], list[Any]]:
        """Execute once with `params`; call what it returns for the rows. In psycopg's pipeline mode
        (storage/turns.py `batched`) the statement waits to go with the next ones until rows are read."""
        cursor = conn.connection.cursor()
        values = self._params(params)
        if listeners := conn.dispatch.before_cursor_execute:  # whoever watches the cursor sees these too
            listeners(conn, cursor, self.sql, values, None, False)
        dbapi_error = conn.dialect.loaded_dbapi.Error
        try:
            cursor.execute(self.sql, values)
        except dbapi_error as exc:
            cursor.close()
            raise _translated(conn, cursor, exc, self.sql, values) from exc
        if not self._columns:  # nothing to read (PostgreSQL's implicit RETURNING id is left unread)
            cursor.close()
            return list
        if not conn.info.get(BATCHED):  # read now: SQLite must not hold a statement open into the next
            fetched = self._fetch(conn, cursor, values)
            return lambda: fetched
        return partial(self._fetch, conn, cursor, values)

    def _fetch(self, conn: Connection, cursor: Any, values: Any) -> list[Any]:
        try:
            return [self._process(raw) for raw in cursor.fetchall()]
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _translated(conn, cursor, exc, self.sql, values) from exc
        finally:
            cursor.close()

    def _process(self, raw: Sequence[Any]) -> Any:
        if not self._results:
            return self._row(*raw)
        row = list(raw)
        for i, process in self._results:
            row[i] = process(row[i])
        return self._row(*row)


_REQUIRED = object()


def _translated(conn: Connection, cursor: Any, exc: Any, sql: str, values: Any) -> StatementError:
    """The driver's error as SQLAlchemy raises it (so a lost database is still `OperationalError`, a 503
    to Twilio), and the connection dropped from the pool when the error says it is gone."""
    gone = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if gone:
        conn.invalidate(exc)
    return DBAPIError.instance(
        sql, values, exc, conn.dialect.loaded_dbapi.Error, connection_invalidated=gone, dialect=conn.dialect
    )


def _positional(dialect: Dialect) -> Dialect:
    """The dialect as it binds parameters by position: psycopg maps `%(name)s` to `$1` on every
    execute (a tenth of a turn's CPU), `%s` it passes through. SQLite's `?` is positional already."""
    if dialect.positional:
        return dialect
    positional = copy.copy(dialect)
    positional.paramstyle, positional.positional = "format", True
    return positional


def _row_type(keys: list[str]) -> Callable[..., Any]:
    """Rows read by attribute (`row.id`), as SQLAlchemy's rows are."""
    return namedtuple("Row", keys, rename=True)


def _default(column: Any, dialect: Dialect) -> tuple[Any, Processor]:
    default = column.default if column.default is not None else column.onupdate
    if default is None or not default.is_scalar:
        raise ValueError(f"{column}: a computed default cannot be prepared: give the value")
    return default.arg, column.type.dialect_impl(dialect).bind_processor(dialect)


def _columns(stmt: Any) -> list[Any]:
    """What the statement returns: a SELECT's columns, a DML's RETURNING columns, else none."""
    return list(stmt.exported_columns)
