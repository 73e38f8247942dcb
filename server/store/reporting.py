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
    Numeric,
    Select,
    String,
    and_,
    case,
    column,
    func,
    literal_column,
    null,
    or_,
    select,
    table,
    text,
    union,
    union_all,
)

from pricing.buckets import Bucket
from pricing.holds import Hold
from pricing.liability import (
    BANDS,
    GONE,
    HOUR,
    NEVER,
    PENDING,
    Key,
    Liability,
    Months,
    Period,
    band_edges,
    cell_at,
    expiry_hour_split,
)
from server.store.buckets import bucket_from_row
from server.store.db import Database
from server.store.redemptions import account_holds
from server.store.schema import accounts, buckets, ledger_entries, redemptions
from server.store.types import UtcDateTime

T = TypeVar("T")
_a, _b, _e, _r = accounts.c, buckets.c, ledger_entries.c, redemptions.c
_LOW = 2**32

# The running totals the triggers of migration 0007 keep on PostgreSQL (not in `metadata`:
# they are the buckets' shadow, written by the database alone).
_CELL = ("program_id", "source", "available_hour", "expires_hour")
_totals_table, _changes_table = (
    table(
        name,
        column("program_id", String),
        column("source", String),
        column("available_hour", UtcDateTime),
        column("expires_hour", UtcDateTime),
        column("points", Numeric),
    )
    for name in ("reporting_bucket_totals", "reporting_bucket_changes")
)
_live_table = table(
    "reporting_accounts_live",
    column("program_id", String),
    column("customer_id", String),
    column("live_until", UtcDateTime),
)
_l = _live_table.c
_FOLD_LOCK = 7_351_120_514  # any fixed number: one fold at a time


def _kept_totals(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _totals(program_id: str) -> Select[Any]:
    """Σ points per cell of the program: the folded totals and the changes since."""
    parts = [
        select(*(t.c[name] for name in _CELL[1:]), t.c.points).where(t.c.program_id == program_id)
        for t in (_totals_table, _changes_table)
    ]
    every = union_all(*parts).subquery()
    source, available, expires = (every.c[name] for name in _CELL[1:])
    # 'infinity' (never expires) comes back as NULL: Python's datetime has no infinity.
    never = func.nullif(expires, literal_column("'infinity'::timestamptz")).label("expires_hour")
    return (
        select(source, available, never, func.sum(every.c.points))
        .group_by(source, available, expires)
        .having(func.sum(every.c.points) != 0)
    )


def _in_hour(instant: Any, hour: datetime) -> ColumnElement[bool]:
    return and_(instant >= hour, instant < hour + HOUR)


def fold_totals(db: Database) -> int:
    """Fold the changes the triggers appended into the running totals (PostgreSQL; one
    fold at a time, others skip). Returns the changes folded."""
    with db.connect() as connection:
        if not _kept_totals(connection):
            return 0
        with connection.begin():
            locked = connection.execute(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _FOLD_LOCK}
            ).scalar_one()
            if not locked:
                return 0
            folded = int(connection.execute(text(_FOLD)).scalar_one())
            connection.execute(text(_EMPTIED))
            return folded


_FOLD = """
WITH moved AS (DELETE FROM reporting_bucket_changes RETURNING *),
folded AS (
    INSERT INTO reporting_bucket_totals AS t
    SELECT program_id, source, available_hour, expires_hour, sum(points) FROM moved
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (program_id, source, available_hour, expires_hour)
    DO UPDATE SET points = t.points + excluded.points
)
SELECT count(*) FROM moved
"""
_EMPTIED = "DELETE FROM reporting_bucket_totals WHERE points = 0"


# What the reports' transactions set on PostgreSQL (the benchmark explains under them too):
# * no JIT: compiling these few big aggregates costs more than it saves (2 of 14.6 s at
#   100,000 accounts went to it);
# * the roll-forward's join of the ledger with its buckets hashes the buckets: at 4 MB
#   it spilled in 16 batches at 100,000 accounts, 256 at a million;
# * no sort: the planner cannot tell that the roll-forward's groups (kind, source, period,
#   cohort) are a few dozen; it guessed one per entry and sorted 32 million of them on
#   disk at a million accounts (105 of 155 s) to group them, where hashing needs no sort.
PLANNER_SETTINGS = ("jit = off", "work_mem = '64MB'", "enable_sort = off")


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
                for setting in PLANNER_SETTINGS:
                    connection.exec_driver_sql(f"SET LOCAL {setting}")
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


class _Figures:
    """Spendable (by source and band) and pending points, added up cell by cell."""

    def __init__(self) -> None:
        self.spendable = self.pending = 0
        self.by_source: dict[str, int] = {}
        self.bands = [0] * len(BANDS)

    def add(self, source: str, where: int, points: int) -> None:
        if where == GONE:
            return
        if where == PENDING:
            self.pending += points
            return
        self.spendable += points
        self.by_source[source] = self.by_source.get(source, 0) + points
        self.bands[where] += points


def _count_buckets(
    connection: Connection,
    figures: _Figures,
    *,
    program_id: str,
    now: datetime,
    only: ColumnElement[bool] | None = None,
) -> None:
    """Add the live buckets (those matching `only`, if given) one by one, as stored."""
    exact = _ExactSum(connection)
    band = _band(now).label("band")
    where = _live_bucket(program_id, now)
    rows = connection.execute(
        select(_b.source, band, *exact.columns(_b.remaining))
        .where(where if only is None else and_(where, only))
        .group_by(_b.source, band)
    ).all()
    for source, index, *parts in rows:
        figures.add(source, index, exact.value(tuple(parts)))


def _count_totals(
    connection: Connection, figures: _Figures, *, program_id: str, now: datetime
) -> None:
    """Add the running totals (PostgreSQL, migration 0007): each hour cell whole where all
    its points count alike at `now`; the buckets of the others one by one."""
    split_hours: set[datetime] = set()
    split_cells: list[ColumnElement[bool]] = []
    for source, available, expires, points in connection.execute(_totals(program_id)):
        never = expires is None
        where = cell_at(available, None if never else expires, now=now)
        if where is not None:
            figures.add(source, where, int(points))
        elif not never and expiry_hour_split(expires, now=now):
            split_hours.add(expires)
        else:
            expiry = _b.expires_at.is_(None) if never else _in_hour(_b.expires_at, expires)
            split_cells.append(and_(expiry, _in_hour(_b.available_at, available)))
    ranges = [_in_hour(_b.expires_at, hour) for hour in sorted(split_hours)] + split_cells
    if ranges:
        _count_buckets(connection, figures, program_id=program_id, now=now, only=or_(*ranges))


def liability_sums(connection: Connection, *, program_id: str, now: datetime) -> Liability:
    """The program's figures at `now` from the rows as stored (nothing lapsed or settled)."""
    exact = _ExactSum(connection)
    figures = _Figures()
    totals = _kept_totals(connection)
    count = _count_totals if totals else _count_buckets
    count(connection, figures, program_id=program_id, now=now)
    held = _sum_of(connection, _r.points, _live_hold(program_id, now))
    debt_parts = connection.execute(
        select(*exact.columns(_a.debt_points), func.count()).where(
            _a.program_id == program_id, _a.debt_points > 0
        )
    ).one()
    return Liability(
        spendable=figures.spendable,
        pending=figures.pending,
        held=held,
        debt=exact.value(tuple(debt_parts[: exact.width])),
        by_source=figures.by_source,
        bands=tuple(figures.bands),
        customers=_customers(connection, program_id=program_id, now=now, totals=totals),
        customers_in_debt=int(debt_parts[exact.width]),
    )


def _sum_of(connection: Connection, column: Any, where: ColumnElement[bool]) -> int:
    exact = _ExactSum(connection)
    return exact.value(tuple(connection.execute(select(*exact.columns(column)).where(where)).one()))


def _customers(connection: Connection, *, program_id: str, now: datetime, totals: bool) -> int:
    """Accounts with a live bucket (from the latest live expiry the triggers keep per
    account, or one group per account over the buckets), and the few holding nothing
    but a live hold."""
    if totals:
        counted = connection.execute(
            select(func.count()).where(_l.program_id == program_id, _l.live_until > now)
        ).scalar_one()
    else:
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
    _b.bucket_id, _b.source, _b.remaining, _b.available_at, _b.expires_at, _b.settled,
    _b.expired_points,
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


# --- The running totals against the buckets (`loyalty-server reconcile`) -------------------


_ISO = """'YYYY-MM-DD"T"HH24:MI:SS"Z"'"""


def _utc(instant: str) -> str:
    """An instant as text whatever the session's time zone: 2026-03-01T10:00:00Z, or never."""
    return (f"CASE WHEN {instant} = 'infinity' THEN 'never' "
            f"ELSE to_char({instant} AT TIME ZONE 'UTC', {_ISO}) END")  # fmt: skip


_TOTALS_DISAGREE = """
WITH kept AS (
    SELECT program_id, source, available_hour, expires_hour, sum(points) AS points
    FROM (SELECT program_id, source, available_hour, expires_hour, points
          FROM reporting_bucket_totals
          UNION ALL
          SELECT program_id, source, available_hour, expires_hour, points
          FROM reporting_bucket_changes) AS every
    GROUP BY 1, 2, 3, 4 HAVING sum(points) <> 0
), due AS (
    SELECT program_id, source, reporting_hour(available_at) AS available_hour,
           reporting_hour(expires_at) AS expires_hour, sum(remaining) AS points
    FROM buckets WHERE remaining > 0 GROUP BY 1, 2, 3, 4
)
SELECT program_id,
       source || ' ' || {available} || ' → ' || {expires}, due.points, kept.points
FROM kept FULL JOIN due USING (program_id, source, available_hour, expires_hour)
WHERE kept.points IS DISTINCT FROM due.points
ORDER BY 1, 2
""".format(available=_utc("available_hour"), expires=_utc("expires_hour"))


_LIVE_DISAGREE = """
WITH due AS (
    SELECT program_id, customer_id, max(coalesce(expires_at, 'infinity')) AS live_until
    FROM buckets WHERE remaining > 0 GROUP BY 1, 2
), kept AS (
    SELECT program_id, customer_id, live_until FROM reporting_accounts_live
    WHERE live_until <> '-infinity'
)
SELECT program_id, customer_id, {due}, {kept}
FROM kept FULL JOIN due USING (program_id, customer_id)
WHERE kept.live_until IS DISTINCT FROM due.live_until
ORDER BY 1, 2
""".format(due=_utc("due.live_until"), kept=_utc("kept.live_until"))


@dataclass(frozen=True)
class TotalsDisagreement:
    """A running total the triggers kept that differs from the buckets summed afresh."""

    program_id: str
    customer_id: str  # "" for a cell of the program's totals
    what: str
    expected: object  # from the buckets
    found: object  # as kept


def totals_disagreements(connection: Connection) -> list[TotalsDisagreement]:
    """Every cell of points left and every account's latest live expiry kept by the
    triggers of migration 0007, against the buckets summed afresh (PostgreSQL; none on
    SQLite, which keeps no totals)."""
    if not _kept_totals(connection):
        return []
    cells = [
        TotalsDisagreement(program, "", f"points left, {cell}", _number(due), _number(kept))
        for program, cell, due, kept in connection.execute(text(_TOTALS_DISAGREE))
    ]
    accounts = [
        TotalsDisagreement(program, customer, "latest live expiry", due, kept)
        for program, customer, due, kept in connection.execute(text(_LIVE_DISAGREE))
    ]
    return cells + accounts


def _number(value: Any) -> int | None:
    return None if value is None else int(value)
