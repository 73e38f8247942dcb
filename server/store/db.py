"""Engines, transactions and the database errors a caller may see.

Every use case runs in `Database.transact`: one transaction, retried a
bounded number of times on serialization failures, deadlocks and SQLite's
busy lock; a database that cannot be reached becomes `DatabaseUnavailable`.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATEs that mean "try the whole transaction again".
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock not available


class DatabaseUnavailable(Exception):
    """The database cannot be reached (down, restarting, connections killed)."""


class ConcurrentUpdate(Exception):
    """A write conflict outlasted the bounded internal retries."""


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` (and `postgres://`) URLs; drive them with psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_database_engine(url: str, *, pool_size: int) -> Engine:
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            url, pool_size=pool_size, max_overflow=0, connect_args={"timeout": 30}
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the driver so `begin` can say IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# The execution options `Database.read` runs under: PostgreSQL reads without BEGIN and
# ROLLBACK round trips (each statement sees a snapshot as of its start, as it would in a
# READ COMMITTED transaction); SQLite reads in a deferred transaction, so that they share
# the database with each other and with the writer instead of queueing behind it.
_READ_OPTIONS: dict[str, dict[str, Any]] = {
    "postgresql": {"isolation_level": "AUTOCOMMIT"},
    "sqlite": {"loyalty_read": True},
}


def _sqlite_begin(connection: Connection) -> None:
    if connection.get_execution_options().get("loyalty_read"):
        connection.exec_driver_sql("BEGIN")  # a consistent snapshot from the first read
        return
    # One writer at a time, decided at BEGIN: SQLite's account-row lock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _is_retryable(exc: DBAPIError) -> bool:
    if _sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig)


def _is_unavailable(exc: DBAPIError) -> bool:
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


class DatabaseObserver(Protocol):
    """Told of retries and of failures a caller will see (metrics implement it)."""

    def retried(self, kind: str) -> None: ...

    def failed(self, kind: str) -> None: ...


class _Unobserved:
    def retried(self, kind: str) -> None:
        pass

    def failed(self, kind: str) -> None:
        pass


class Database:
    def __init__(
        self,
        engine: Engine,
        *,
        max_attempts: int = 5,
        observer: DatabaseObserver | None = None,
    ) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.observer: DatabaseObserver = observer or _Unobserved()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except DBAPIError as exc:
            if _is_unavailable(exc) and not _is_retryable(exc):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise

    def transact(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction, retrying conflicts and one lost connection."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                with self.engine.begin() as connection:
                    return work(connection)
            except DBAPIError as exc:
                if _is_retryable(exc):
                    if attempt == self.max_attempts:
                        self.observer.failed("conflict")
                        raise ConcurrentUpdate(str(exc.orig)) from exc
                    self.observer.retried("conflict")
                    time.sleep(0.002 * attempt)
                    continue
                if _is_unavailable(exc):
                    # A stale pooled connection (the database restarted) fails once;
                    # the pool has been refreshed, so try once more before giving up.
                    if attempt == 1 and exc.connection_invalidated:
                        self.observer.retried("connection")
                        continue
                    self.observer.failed("unavailable")
                    raise DatabaseUnavailable(str(exc.orig)) from exc
                raise
        raise AssertionError("unreachable")

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run a read-only `work`; reads never write (SPEC §7)."""
        options = _READ_OPTIONS.get(self.backend, {})
        for attempt in (1, 2):
            try:
                with self.engine.connect() as connection:
                    return work(connection.execution_options(**options))
            except DBAPIError as exc:
                if _is_unavailable(exc) and not _is_retryable(exc):
                    if attempt == 1 and exc.connection_invalidated:
                        self.observer.retried("connection")
                        continue
                    self.observer.failed("unavailable")
                    raise DatabaseUnavailable(str(exc.orig)) from exc
                raise
        raise AssertionError("unreachable")

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except DBAPIError:
            return False
