"""`Database.transact` under injected database errors, without a server (docs/rules.md §7).

The work raises psycopg's own errors (wrapped by SQLAlchemy as it wraps them
from the driver) a set number of times: serialization failures (40001) and
deadlocks (40P01) are retried, each attempt a new transaction whose writes
were rolled back, at most `max_attempts` times, then `ConcurrentUpdate` —
ABORTED, reason CONCURRENT_UPDATE, at the edge. A lock wait that ran out
(55P03) is not retried: ABORTED at once, or DEADLINE_EXCEEDED when the call's
deadline cut it; work whose deadline already passed does not start. The
metrics counters `loyalty_database_{retries,errors}_total` count each case.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg.errors
import pytest
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from server.api.errors import to_status
from server.metrics import Metrics
from server.store.db import (
    CallDeadlineExceeded,
    ConcurrentUpdate,
    Database,
    call_deadline,
    create_database_engine,
)
from server.texts.texts import Languages

PLAIN = Languages({}).texts(None, "")  # English: no program

ERRORS = {
    "40001": psycopg.errors.SerializationFailure,
    "40P01": psycopg.errors.DeadlockDetected,
    "55P03": psycopg.errors.LockNotAvailable,
}


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Database, Metrics]]:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'retries.sqlite3'}", pool_size=2)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE effects (attempt INTEGER NOT NULL)"))
    metrics = Metrics()
    yield Database(engine, observer=metrics, lock_timeout=5.0), metrics
    engine.dispose()


class Flaky:
    """Work that writes a row, then fails with `sqlstate` on its first `failures` attempts."""

    def __init__(self, sqlstate: str, failures: int) -> None:
        self.error = ERRORS[sqlstate]
        self.failures = failures
        self.attempts = 0

    def __call__(self, connection: Connection) -> str:
        self.attempts += 1
        connection.execute(text("INSERT INTO effects VALUES (:n)"), {"n": self.attempts})
        if self.attempts <= self.failures:
            raise OperationalError(
                "INSERT INTO effects …", {}, self.error(f"injected {self.attempts}")
            )
        return "done"


def _effects(database: Database) -> list[int]:
    with database.engine.connect() as connection:
        return [n for (n,) in connection.execute(text("SELECT attempt FROM effects"))]


def _counted(metrics: Metrics, name: str, kind: str) -> float:
    return metrics.registry.get_sample_value(name, {"kind": kind}) or 0.0


def _status(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and ErrorInfo reason the edge answers for `exc`."""
    status = to_status(exc, PLAIN)
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    info = error_details_pb2.ErrorInfo()
    assert status_pb2.Status.FromString(details).details[0].Unpack(info)
    return status.code, info.reason


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
@pytest.mark.parametrize("failures", [1, 4])
def test_conflicts_are_retried_until_the_work_succeeds(
    database: tuple[Database, Metrics], sqlstate: str, failures: int
) -> None:
    db, metrics = database
    work = Flaky(sqlstate, failures)
    assert db.transact(work) == "done"
    assert work.attempts == failures + 1
    assert _effects(db) == [failures + 1], "every failed attempt rolled back its write"
    assert _counted(metrics, "loyalty_database_retries_total", "conflict") == failures
    assert _counted(metrics, "loyalty_database_errors_total", "conflict") == 0


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_conflicts_past_the_bound_are_aborted_concurrent_update(
    database: tuple[Database, Metrics], sqlstate: str
) -> None:
    db, metrics = database
    work = Flaky(sqlstate, failures=1_000)
    with pytest.raises(ConcurrentUpdate) as raised:
        db.transact(work)
    assert work.attempts == db.max_attempts == 5
    assert _effects(db) == []
    assert _counted(metrics, "loyalty_database_retries_total", "conflict") == 4
    assert _counted(metrics, "loyalty_database_errors_total", "conflict") == 1
    assert _status(raised.value) == (grpc.StatusCode.ABORTED, "CONCURRENT_UPDATE")


def test_a_lock_timeout_is_not_retried(database: tuple[Database, Metrics]) -> None:
    db, metrics = database
    work = Flaky("55P03", failures=1)
    with pytest.raises(ConcurrentUpdate) as raised:
        db.transact(work)
    assert work.attempts == 1
    assert _counted(metrics, "loyalty_database_errors_total", "lock_timeout") == 1
    assert _counted(metrics, "loyalty_database_retries_total", "conflict") == 0
    assert _status(raised.value) == (grpc.StatusCode.ABORTED, "CONCURRENT_UPDATE")


def test_a_lock_wait_cut_by_the_call_deadline_is_deadline_exceeded(
    database: tuple[Database, Metrics],
) -> None:
    db, metrics = database
    token = call_deadline.set(time.monotonic() + 1.0)  # nearer than the 5 s lock timeout
    try:
        work = Flaky("55P03", failures=1)
        with pytest.raises(CallDeadlineExceeded) as raised:
            db.transact(work)
        assert work.attempts == 1
        assert _counted(metrics, "loyalty_database_errors_total", "deadline") == 1
        assert _status(raised.value) == (grpc.StatusCode.DEADLINE_EXCEEDED, "CONCURRENT_UPDATE")
    finally:
        call_deadline.reset(token)


def test_work_whose_deadline_passed_does_not_start(database: tuple[Database, Metrics]) -> None:
    db, metrics = database
    token = call_deadline.set(time.monotonic() - 0.001)
    try:
        work = Flaky("40001", failures=0)
        with pytest.raises(CallDeadlineExceeded):
            db.transact(work)
        with pytest.raises(CallDeadlineExceeded):
            db.read(lambda connection: connection.execute(text("SELECT 1")).scalar_one())
        assert work.attempts == 0
        assert _counted(metrics, "loyalty_database_errors_total", "deadline") == 2
    finally:
        call_deadline.reset(token)
    assert db.transact(Flaky("40001", failures=0)) == "done", "no deadline: it runs"
