"""Engines, transactions and the database errors a caller may see.

Every use case runs in `Database.transact`: one transaction, retried a
bounded number of times on serialization failures and deadlocks; a database
that cannot be reached becomes `DatabaseUnavailable`.

No transaction waits for a lock without bound. Each waits at most the lock
timeout (`--db-lock-timeout`: PostgreSQL's `lock_timeout`, SQLite's busy
timeout), and never past the deadline of the call it serves: a thread is not
left queued behind an account lock for a caller that has given up. A wait cut
short by the lock timeout is `ConcurrentUpdate`; one cut short by the call's
deadline (or work that would start after it) is `CallDeadlineExceeded`.

A failover (docs/rules.md §12) is met by the URL and the pool: given several hosts
(`postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write`) libpq
connects to the one that takes writes, and an error that says the pooled
connections point at a server that no longer does (it was demoted, is shutting
down, or went away) empties the pool, so the next transaction connects afresh.
Until a primary answers, calls fail `DatabaseUnavailable` and `ping` is False.
"""

import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATEs that mean "try the whole transaction again".
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
# A lock wait ran out (PostgreSQL's lock_timeout): the account stayed locked that long, so
# waiting again would only hold the thread longer. Not retried.
LOCK_TIMEOUT_SQLSTATE = "55P03"

# SQLSTATEs after which a connection no longer reaches a primary: treated as a lost
# connection (the whole pool is dropped and the transaction runs again on a new one).
# Class 08 (connection exception) counts too.
FAILOVER_SQLSTATES = {
    "25006",  # read_only_sql_transaction: the server is a standby now, or fenced read-only
    "57P01",  # admin_shutdown: `pg_ctl stop -m fast`, or a backend terminated
    "57P02",  # crash_shutdown: another backend crashed, this one is being reset
    "57P03",  # cannot_connect_now: starting up, shutting down, or in recovery
}

DEFAULT_LOCK_TIMEOUT = 5.0  # seconds

# The deadline (on `time.monotonic()`) of the call whose work runs on this thread, if any.
call_deadline: ContextVar[float | None] = ContextVar("call_deadline", default=None)


class DatabaseUnavailable(Exception):
    """The database cannot be reached (down, restarting, connections killed)."""


class ConcurrentUpdate(Exception):
    """A write conflict outlasted the bounded internal retries, or a lock wait its timeout."""


class CallDeadlineExceeded(Exception):
    """The call's deadline passed before its transaction could run or get its lock."""


def remaining_seconds() -> float | None:
    """Seconds left before this thread's call deadline (None: no deadline)."""
    deadline = call_deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def _milliseconds(seconds: float) -> int:
    # 0 would mean "no timeout" to both PostgreSQL and SQLite: wait at least 1 ms.
    return max(1, int(seconds * 1000))


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` (and `postgres://`) URLs; drive them with psycopg 3.

    libpq's multi-host form (`postgresql://u@h1:5432,h2:5432/db?...`, docs/rules.md §12) becomes
    SQLAlchemy's (`postgresql+psycopg://u@/db?host=h1:5432&host=h2:5432&...`), which
    psycopg receives as `host=h1,h2 port=5432,5432`.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
            break
    if url.startswith("postgresql"):
        return _hosts_as_query(url)
    return url


def _hosts_as_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return url
    query = [("host", host) for host in hosts.split(",")]
    query += urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    # Not urlunsplit: with no user it would drop the empty authority's `//`.
    return f"{parts.scheme}://{userinfo}{at}{parts.path}?{urllib.parse.urlencode(query)}"


def create_database_engine(
    url: str, *, pool_size: int, lock_timeout: float | None = None
) -> Engine:
    """An engine; with `lock_timeout` (seconds) no statement waits longer for a lock."""
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            url, pool_size=pool_size, max_overflow=0, connect_args={"timeout": 30}
        )
        busy_ms = 30_000 if lock_timeout is None else _milliseconds(lock_timeout)
        event.listen(engine, "connect", lambda conn, _record: _sqlite_connect(conn, busy_ms))
        event.listen(engine, "begin", lambda conn: _sqlite_begin(conn, busy_ms))
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=10,
        connect_args=connect_args(lock_timeout),
    )
    event.listen(engine, "handle_error", failover_is_disconnect)
    return engine


def connect_args(lock_timeout: float | None) -> dict[str, Any]:
    """psycopg's arguments for every PostgreSQL connection, besides the URL's."""
    # Sessions in UTC: psycopg then reads every instant as `datetime.UTC` itself, with no
    # conversion per row (server/store/hot.py), whatever the server's default zone.
    options = ["-c TimeZone=UTC"]
    if lock_timeout is not None:
        # The session's default; a transaction serving a call with a nearer deadline
        # lowers it for itself (`SET LOCAL`, in `Database.transact`).
        options.append(f"-c lock_timeout={_milliseconds(lock_timeout)}")
    return {"connect_timeout": 5, "options": " ".join(options)}


def failover_is_disconnect(context: ExceptionContext) -> None:
    """Count the errors a failover causes as lost connections: SQLAlchemy then drops
    this connection and every pooled one (`invalidate_pool_on_disconnect`)."""
    state = getattr(context.original_exception, "sqlstate", None) or ""
    if state in FAILOVER_SQLSTATES or state.startswith("08"):
        context.is_disconnect = True


def _sqlite_connect(dbapi_connection: Any, busy_ms: int) -> None:
    # Take transaction control from the driver so `begin` can say IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.close()


# The execution options `Database.read` runs under. A read that needs several statements
# sees one snapshot (docs/rules.md §7: `GetAccount` never counts a point as both held and
# spendable): PostgreSQL reads in a read-only REPEATABLE READ transaction (its snapshot is
# taken at the first statement; a read-only transaction never fails to serialize); SQLite
# reads in one deferred transaction, so that they share the database with each other and
# with the writer instead of queueing behind it (WAL: the snapshot of its first read).
_READ_OPTIONS: dict[str, dict[str, Any]] = {
    "postgresql": {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True},
    "sqlite": {"loyalty_read": True},
}


def _sqlite_begin(connection: Connection, busy_ms: int) -> None:
    # The wait for the write lock is bounded like PostgreSQL's lock wait: by the lock
    # timeout, and by the deadline of the call this transaction serves.
    left = remaining_seconds()
    wait_ms = busy_ms if left is None else min(busy_ms, _milliseconds(left))
    connection.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
    if connection.get_execution_options().get("loyalty_read"):
        connection.exec_driver_sql("BEGIN")  # a consistent snapshot from the first read
        return
    # One writer at a time, decided at BEGIN: SQLite's account-row lock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _is_retryable(exc: DBAPIError) -> bool:
    return _sqlstate(exc) in RETRYABLE_SQLSTATES


def _is_lock_timeout(exc: DBAPIError) -> bool:
    """A lock wait that ran out: PostgreSQL's lock_timeout, SQLite's busy timeout."""
    return _sqlstate(exc) == LOCK_TIMEOUT_SQLSTATE or "database is locked" in str(exc.orig)


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
        lock_timeout: float | None = None,
    ) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.observer: DatabaseObserver = observer or _Unobserved()
        # The engine's lock timeout (seconds), if it has one: a call whose deadline is
        # nearer gets a shorter one for its transaction.
        self.lock_timeout = lock_timeout

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except DBAPIError as exc:
            if _is_unavailable(exc) and not (_is_retryable(exc) or _is_lock_timeout(exc)):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise

    def _lock_wait_for_call(self) -> int | None:
        """Milliseconds this transaction may wait for locks, when the call's deadline is
        nearer than the engine's lock timeout (None: the engine's timeout applies).

        Raises `CallDeadlineExceeded` when the deadline has already passed: nobody is
        waiting for the answer any more, so the work does not start.
        """
        left = remaining_seconds()
        if left is None:
            return None
        if left <= 0:
            self.observer.failed("deadline")
            raise CallDeadlineExceeded("the call's deadline passed before its transaction ran")
        if self.lock_timeout is not None and left >= self.lock_timeout:
            return None
        return _milliseconds(left)

    def transact(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction, retrying conflicts and one lost connection."""
        for attempt in range(1, self.max_attempts + 1):
            wait_ms = self._lock_wait_for_call()
            try:
                with self.engine.begin() as connection:
                    if wait_ms is not None and self.backend == "postgresql":
                        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
                    return work(connection)
            except DBAPIError as exc:
                if _is_lock_timeout(exc):
                    raise self._waited_too_long(exc, by_deadline=wait_ms is not None) from exc
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

    def _waited_too_long(self, exc: DBAPIError, *, by_deadline: bool) -> Exception:
        """The error for a lock wait that ran out: the call's deadline, or the lock timeout."""
        if by_deadline:
            self.observer.failed("deadline")
            return CallDeadlineExceeded(str(exc.orig))
        self.observer.failed("lock_timeout")
        return ConcurrentUpdate(str(exc.orig))

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run a read-only `work`; reads never write (docs/rules.md §7)."""
        options = _READ_OPTIONS.get(self.backend, {})
        for attempt in (1, 2):
            wait_ms = self._lock_wait_for_call()
            try:
                with self.engine.connect() as connection:
                    connection.execution_options(**options)
                    with connection.begin():
                        return work(connection)
            except DBAPIError as exc:
                if _is_lock_timeout(exc):  # SQLite: a read waits for the writer's lock
                    raise self._waited_too_long(exc, by_deadline=wait_ms is not None) from exc
                if _is_unavailable(exc) and not (_is_retryable(exc) or _is_lock_timeout(exc)):
                    if attempt == 1 and exc.connection_invalidated:
                        self.observer.retried("connection")
                        continue
                    self.observer.failed("unavailable")
                    raise DatabaseUnavailable(str(exc.orig)) from exc
                raise
        raise AssertionError("unreachable")

    def ping(self) -> bool:
        """Whether the database answers and, on PostgreSQL, takes writes (is a primary)."""
        try:
            with self.engine.connect() as connection:
                if self.backend != "postgresql":
                    connection.execute(text("SELECT 1"))
                    return True
                read_only = connection.exec_driver_sql("SHOW transaction_read_only").scalar()
                if read_only == "on":
                    # A pooled connection to a demoted or fenced server: drop the pool
                    # so that the next connections look for the primary afresh.
                    connection.invalidate()
                    self.engine.dispose()
                    return False
            return True
        except DBAPIError:
            return False
