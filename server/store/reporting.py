"""The finance reports' queries: a whole program summed set-wise, in one snapshot.

The sums count the rows as stored. The few accounts where time changed something no
write has recorded yet (a hold past its deadline; debt, with a credit matured and not
yet settled against it) are listed by `recounted_accounts` and loaded whole by
`account_rows`, so the service can count them again as a read sees them. Expired
points the expiry job has not written down are summed here from the buckets (the
EXPIRY entries they will become).

Sums are exact: PostgreSQL's SUM of BIGINT is NUMERIC; SQLite's would overflow
(it raises), so there each sum is taken in two halves of 32 bits and put together
in Python.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    func,
    null,
    or_,
    select,
    union,
)

from pricing.buckets import Bucket
from pricing.holds import Hold
from pricing.liability import (
    BANDS,
    NEVER,
    Key,
    Liability,
    Months,
    Period,
    band_edges,
)
from server.store.buckets import bucket_from_row
from server.store.db import Database
from server.store.redemptions import account_holds
from server.store.schema import accounts, buckets, ledger_entries, redemptions

T = TypeVar("T")
_a, _b, _e, _r = accounts.c, buckets.c, ledger_entries.c, redemptions.c
_LOW = 2**32


@contextmanager
def _snapshot_connection(db: Database) -> Iterator[Connection]:
    with db.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:  # a deferred BEGIN: SQLite's snapshot holds from the first read to the end
            connection = connection.execution_options(loyalty_read=True)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                # Compiling these few big aggregates costs more than it saves (measured:
                # 2 of 14.6 s at 100,000 accounts went to JIT).
                connection.exec_driver_sql("SET LOCAL jit = off")
            yield connection


def in_one_snapshot(db: Database, work: Callable[[Connection], T]) -> T:
    """Run every statement of `work` in one read-only snapshot (REPEATABLE READ on
    PostgreSQL, one transaction on SQLite), so no write can fall between two of them."""
    with _snapshot_connection(db) as connection:
        return work(connection)


class _ExactSum:
    """SUM(expr) that cannot overflow on either backend."""

    def __init__(self, connection: Connection) -> None:
        self.split = connection.dialect.name == "sqlite"

    def columns(self, expr: ColumnElement[Any]) -> list[ColumnElement[Any]]:
        if not self.split:
            return [func.coalesce(func.sum(expr), 0)]
        high = func.coalesce(func.sum(expr.op(">>")(32)), 0)
        low = func.coalesce(func.sum(expr.op("&")(_LOW - 1)), 0)
        return [high, low]

    def value(self, parts: tuple[Any, ...]) -> int:
        if not self.split:
            return int(parts[0])
        return int(parts[0]) * _LOW + int(parts[1])

    @property
    def width(self) -> int:
        return 2 if self.split else 1


def _live_bucket(program_id: str, now: datetime) -> ColumnElement[bool]:
    return and_(
        _b.program_id == program_id,
        _b.remaining > 0,
        or_(_b.expires_at.is_(None), _b.expires_at > now),
    )


def _live_hold(program_id: str, now: datetime) -> ColumnElement[bool]:
    return and_(_r.program_id == program_id, _r.state == "HELD", _r.hold_expires_at > now)


def _band(now: datetime) -> ColumnElement[int]:
    """-1 for pending points, else the index into BANDS of a spendable bucket's expiry."""
    edges = band_edges(now)
    whens: list[tuple[ColumnElement[bool], int]] = [
        (_b.available_at > now, -1),
        (_b.expires_at.is_(None), NEVER),
    ]
    whens += [(_b.expires_at < edge, index) for index, edge in enumerate(edges)]
    return case(*whens, else_=len(edges))


def liability_sums(connection: Connection, *, program_id: str, now: datetime) -> Liability:
    """The program's figures at `now` from the rows as stored (nothing lapsed or settled)."""
    exact = _ExactSum(connection)
    band = _band(now).label("band")
    rows = connection.execute(
        select(_b.source, band, *exact.columns(_b.remaining))
        .where(_live_bucket(program_id, now))
        .group_by(_b.source, band)
    ).all()
    spendable = pending = 0
    by_source: dict[str, int] = {}
    bands = [0] * len(BANDS)
    for source, index, *parts in rows:
        points = exact.value(tuple(parts))
        if index < 0:
            pending += points
            continue
        spendable += points
        by_source[source] = by_source.get(source, 0) + points
        bands[index] += points
    held = _sum_of(connection, _r.points, _live_hold(program_id, now))
    debt_parts = connection.execute(
        select(*exact.columns(_a.debt_points), func.count()).where(
            _a.program_id == program_id, _a.debt_points > 0
        )
    ).one()
    return Liability(
        spendable=spendable,
        pending=pending,
        held=held,
        debt=exact.value(tuple(debt_parts[: exact.width])),
        by_source=by_source,
        bands=tuple(bands),
        customers=_customers(connection, program_id=program_id, now=now),
        customers_in_debt=int(debt_parts[exact.width]),
    )


def _sum_of(connection: Connection, column: Any, where: ColumnElement[bool]) -> int:
    exact = _ExactSum(connection)
    return exact.value(tuple(connection.execute(select(*exact.columns(column)).where(where)).one()))


def _customers(connection: Connection, *, program_id: str, now: datetime) -> int:
    """Accounts with a live bucket (one streaming group per account over the index), and
    the few holding nothing but a live hold."""
    with_points = select(_b.customer_id).where(_live_bucket(program_id, now))
    counted = connection.execute(
        select(func.count()).select_from(with_points.group_by(_b.customer_id).subquery())
    ).scalar_one()
    only_held = connection.execute(
        select(func.count(func.distinct(_r.customer_id))).where(
            _live_hold(program_id, now),
            ~select(_b.bucket_id)
            .where(_b.customer_id == _r.customer_id, _live_bucket(program_id, now))
            .exists(),
        )
    ).scalar_one()
    return int(counted) + int(only_held)


def recounted_accounts(connection: Connection, *, program_id: str, now: datetime) -> list[str]:
    """Customers whose stored rows a read at `now` would see otherwise: a hold past its
    deadline, or debt that a matured, unsettled credit pays."""
    lapsed = select(_r.customer_id).where(
        _r.program_id == program_id, _r.state == "HELD", _r.hold_expires_at <= now
    )
    settling = select(_a.customer_id).where(
        _a.program_id == program_id,
        _a.debt_points > 0,
        select(_b.bucket_id)
        .where(
            _b.program_id == _a.program_id,
            _b.customer_id == _a.customer_id,
            _b.settled.is_(False),
            _b.available_at <= now,
        )
        .exists(),
    )
    rows = connection.execute(union(lapsed, settling)).all()
    return sorted(row[0] for row in rows)


@dataclass(frozen=True)
class AccountRows:
    buckets: list[Bucket]
    holds: list[Hold]
    debt: int


_all_columns = (
    _b.bucket_id, _b.source, _b.remaining, _b.available_at, _b.expires_at, _b.settled
)  # fmt: skip


def account_rows(connection: Connection, *, program_id: str, customer_id: str) -> AccountRows:
    """Every bucket, live hold and the debt of one account, as stored."""
    found = connection.execute(
        select(*_all_columns).where(_b.program_id == program_id, _b.customer_id == customer_id)
    ).all()
    debt = connection.execute(
        select(_a.debt_points).where(_a.program_id == program_id, _a.customer_id == customer_id)
    ).scalar_one_or_none()
    return AccountRows(
        buckets=[bucket_from_row(row) for row in found],
        holds=account_holds(connection, program_id=program_id, customer_id=customer_id),
        debt=int(debt or 0),
    )


# --- The roll-forward ----------------------------------------------------------------------


def first_instant(connection: Connection, *, program_id: str) -> datetime | None:
    """The earliest effective instant of the program's ledger (no bucket became spendable
    before its first credit)."""
    found: datetime | None = connection.execute(
        select(func.min(_e.effective_at)).where(_e.program_id == program_id)
    ).scalar_one()
    return found


def _cohort(available_at: Any, months: Months) -> ColumnElement[Any]:
    """The index of the month `available_at` falls in (NULL: no bucket)."""
    whens: list[tuple[ColumnElement[bool], Any]] = [(available_at.is_(None), null())]
    whens += [(available_at < start, index) for index, start in enumerate(months.starts[1:])]
    return case(*whens, else_=len(months.starts) - 1)


def ledger_sums(
    connection: Connection, *, program_id: str, start: datetime, end: datetime, months: Months
) -> dict[Key, int]:
    """The ledger up to `end` summed by kind, source, before/in the window, and cohort."""
    exact = _ExactSum(connection)
    period = case((_e.effective_at <= start, int(Period.BEFORE)), else_=int(Period.WINDOW))
    cohort = _cohort(_b.available_at, months)
    query = (
        select(
            _e.kind,
            _e.source,
            period.label("period"),
            cohort.label("cohort"),
            *exact.columns(_e.points),
        )
        .select_from(ledger_entries.outerjoin(buckets, _b.bucket_id == _e.bucket_id))
        .where(_e.program_id == program_id, _e.effective_at <= end)
        .group_by(_e.kind, _e.source, period, cohort)
    )
    sums: dict[Key, int] = {}
    for kind, source, in_period, in_cohort, *parts in connection.execute(query):
        key = (kind, source, Period(in_period), None if in_cohort is None else int(in_cohort))
        sums[key] = sums.get(key, 0) + exact.value(tuple(parts))
    return sums


def due_expiry_sums(
    connection: Connection, *, program_id: str, start: datetime, end: datetime, months: Months
) -> dict[Key, int]:
    """EXPIRY entries not written yet: points left in buckets expired by `end`, as stored."""
    exact = _ExactSum(connection)
    period = case((_b.expires_at <= start, int(Period.BEFORE)), else_=int(Period.WINDOW))
    cohort = _cohort(_b.available_at, months)
    query = (
        select(
            _b.source,
            period.label("period"),
            cohort.label("cohort"),
            *exact.columns(_b.remaining),
        )
        .where(_b.program_id == program_id, _b.remaining > 0, _b.expires_at <= end)
        .group_by(_b.source, period, cohort)
    )
    sums: dict[Key, int] = {}
    for source, in_period, in_cohort, *parts in connection.execute(query):
        key = ("EXPIRY", source, Period(in_period), int(in_cohort))
        sums[key] = sums.get(key, 0) - exact.value(tuple(parts))
    return sums
