"""The hot path's statements: built once with SQLAlchemy, sent by psycopg itself on PostgreSQL.

A call on the hot path (quote, apply, capture, reverse and the reads) sends a handful of
statements; through SQLAlchemy's execution each costs several times the client CPU that
psycopg alone spends on it (docs/benchmarks.md). A `Hot` statement is compiled once for
PostgreSQL and executed on the psycopg connection under the SQLAlchemy `Connection` (the
same transaction: SQLAlchemy still begins, commits, pools and recovers from errors), as
a prepared statement. Its constants are SQL literals, never parameters: PostgreSQL then
plans a prepared statement's generic plan with the constant in view (`state = 'HELD'`
matches a partial index; a parameter would not), and `Hot` refuses a statement that sends
a constant as a parameter. On SQLite the same construct runs through SQLAlchemy.
"""

from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, NoReturn

import psycopg
from sqlalchemy import (
    Connection,
    Executable,
    literal_column,
)
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from server.store.types import UtcDateTime

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]

Params = Mapping[str, Any]


def const(value: str | int | bool, type_: TypeEngine[Any] | None = None) -> ColumnElement[Any]:
    """`value` written into the statement's text (a literal), not sent as a parameter."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = "'" + value.replace("'", "''") + "'"
    return literal_column(text, type_)


def utc(value: datetime | None) -> datetime | None:
    """An instant as read from PostgreSQL (the session's zone), in UTC."""
    if value is None or value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


class ConstantAsParameter(Exception):
    """A hot statement would send a constant as a bind parameter: make it a `const`."""


class Hot:
    """One statement of the hot path; `rows`, `run` and `many` execute it on a connection."""

    def __init__(
        self,
        statement: Executable,
        *,
        keys: Sequence[str] | None = None,
        sqlite: Executable | None = None,
    ) -> None:
        """`statement` for PostgreSQL (`keys`: the columns an INSERT names); SQLite runs
        `sqlite` when given (its own dialect's `INSERT … ON CONFLICT`), else the same."""
        self.statement = statement if sqlite is None else sqlite
        columns_named = list(keys or ()) or None
        compiled = statement.compile(dialect=_DIALECT, column_keys=columns_named)  # type: ignore[attr-defined]
        constants = {
            name
            for name, bind in compiled.binds.items()
            if not bind.required and bind.value is not None
        }
        if constants:
            raise ConstantAsParameter(f"{sorted(constants)} of {compiled.string[:80]!r}")
        self.sql: str = compiled.string
        columns = list(getattr(statement, "exported_columns", ()))
        self._instants = tuple(
            i for i, column in enumerate(columns) if isinstance(column.type, UtcDateTime)
        )
        names = [column.key for column in columns]
        self._named: Any = namedtuple("Row", names) if names else None

    def rows(self, connection: Connection, params: Params) -> list[Sequence[Any]]:
        """The statement's rows (instants in UTC)."""
        if connection.dialect.name != "postgresql":
            return list(connection.execute(self.statement, params))
        driver = _driver(connection)
        try:
            rows = driver.execute(self.sql, params, prepare=True).fetchall()
        except psycopg.Error as exc:
            _raise(connection, exc, self.sql, params)
        return self.in_utc(rows, driver.info.timezone)

    def in_utc(self, rows: list[Any], zone: tzinfo) -> list[Any]:
        """Rows read in a session of time zone `zone`, with their instants in UTC: as they
        are when the session is in UTC, as the server's sessions are (server/store/db.py)."""
        if not self._instants or zone is UTC:
            return rows
        return [self._in_utc(row) for row in rows]

    def named(self, connection: Connection, params: Params) -> list[Any]:
        """The rows with their columns as attributes too (`row.order_id`), like SQLAlchemy's."""
        if connection.dialect.name != "postgresql":
            return list(connection.execute(self.statement, params))
        assert self._named is not None, "a statement that returns no columns"
        make = self._named._make
        return [make(row) for row in self.rows(connection, params)]

    def run(self, connection: Connection, params: Params) -> None:
        """Execute it for its effect."""
        if connection.dialect.name != "postgresql":
            connection.execute(self.statement, params)
            return
        try:
            _driver(connection).execute(self.sql, params, prepare=True)
        except psycopg.Error as exc:
            _raise(connection, exc, self.sql, params)

    def many(self, connection: Connection, params: Iterable[Params]) -> None:
        """Execute it once per parameter set (psycopg: in one round trip, pipelined)."""
        batch = list(params)
        if not batch:
            return
        if connection.dialect.name != "postgresql":
            connection.execute(self.statement, batch)
            return
        if len(batch) == 1:
            self.run(connection, batch[0])
            return
        try:
            with _driver(connection).cursor() as cursor:
                cursor.executemany(self.sql, batch)
        except psycopg.Error as exc:
            _raise(connection, exc, self.sql, batch)

    def _in_utc(self, row: Sequence[Any]) -> tuple[Any, ...]:
        values = list(row)
        for i in self._instants:
            values[i] = utc(values[i])
        return tuple(values)


def _driver(connection: Connection) -> psycopg.Connection[Any]:
    driver = connection.connection.driver_connection
    assert driver is not None
    return driver  # type: ignore[no-any-return]


def _raise(connection: Connection, exc: psycopg.Error, sql: str, params: Any) -> NoReturn:
    """The error as SQLAlchemy raises it, with its handling: the `handle_error` events (a
    failover counts as a lost connection), the connection and pool invalidated on a
    disconnect, the DBAPI error wrapped (IntegrityError, OperationalError ...)."""
    connection._handle_dbapi_exception(exc, sql, params, None, None)
