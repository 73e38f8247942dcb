"""The finance reports' running totals (migration 0007, PostgreSQL) against the buckets.

Hypothesis writes random histories straight into the buckets table (inserts, partial and
whole spends, refills, deletes, folds, a TRUNCATE to start each one), then:

* the totals the triggers kept equal the buckets summed afresh (`totals_disagreements`,
  which `loyalty-server reconcile` runs too), before and after a fold;
* GetLiability's sums read from the totals equal the same sums read bucket by bucket at
  instants on and around the hours, the band edges and the buckets' own instants.

And the migration fills the totals from the buckets a database already holds.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select, text, update

from server.reconcile import reconcile
from server.store import reporting
from server.store.db import Database, create_database_engine
from server.store.migrate import alembic_config, migrate
from server.store.schema import accounts, buckets
from tests.support.databases import fresh_postgres

PROGRAM = "p"
CUSTOMERS = ("c0", "c1", "c2")
T = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Lifetimes that put expiries on and around the hours and the bands' edges (30, 60, 90,
# 365 days after an instant near T): a base and up to 4 h either way, in 10 minutes.
LIFETIMES = (
    st.tuples(st.sampled_from([None, 0, 30, 30, 60, 90, 365]), st.integers(-24, 24))
    .map(lambda p: None if p[0] is None else p[0] * DAY + p[1] * 10 * MINUTE)
    .filter(lambda lifetime: lifetime is None or lifetime > timedelta(0))
)

bucket_specs = st.fixed_dictionaries(
    {
        "customer": st.sampled_from(CUSTOMERS),
        "source": st.sampled_from(["loyalty", "promo"]),
        "available": st.integers(-18, 18).map(lambda k: T + k * 20 * MINUTE),
        "lifetime": LIFETIMES,
        "granted": st.integers(1, 1_000),
        "share": st.integers(0, 4),  # remaining: granted × share / 4
    }
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), bucket_specs),
        st.tuples(st.just("spend"), st.integers(0, 50), st.integers(0, 4)),
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("fold")),
    ),
    max_size=25,
)
# Instants on and between the hours; some 30, 90 or 365 days before T, so a band's edge
# falls among the buckets' expiries.
instants = st.lists(
    st.tuples(st.integers(-36, 36), st.sampled_from([0, 0, 0, -30, -60, -90, -365])).map(
        lambda p: T + p[0] * 10 * MINUTE + p[1] * DAY
    ),
    min_size=3,
    max_size=8,
)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with fresh_postgres() as url:
        engine = create_database_engine(url, pool_size=2)
        migrate(engine)
        with engine.begin() as connection:
            connection.execute(
                insert(accounts), [{"program_id": PROGRAM, "customer_id": c, "created_at": T}
                                   for c in CUSTOMERS]
            )  # fmt: skip
        yield engine
        engine.dispose()


def _apply(engine: Engine, step: tuple[Any, ...]) -> None:
    kind = step[0]
    if kind == "fold":
        reporting.fold_totals(Database(engine))
        return
    with engine.begin() as connection:
        ids = connection.execute(select(buckets.c.bucket_id).order_by("bucket_id")).scalars().all()
        if kind == "insert":
            spec = step[1]
            lifetime = spec["lifetime"]
            connection.execute(
                insert(buckets).values(
                    program_id=PROGRAM, customer_id=spec["customer"], source=spec["source"],
                    granted=spec["granted"], remaining=spec["granted"] * spec["share"] // 4,
                    available_at=spec["available"], created_at=spec["available"],
                    expires_at=None if lifetime is None else spec["available"] + lifetime,
                    origin="GRANT",
                )
            )  # fmt: skip
        elif ids and kind == "spend":
            chosen = ids[step[1] % len(ids)]
            connection.execute(
                update(buckets)
                .where(buckets.c.bucket_id == chosen)
                .values(remaining=buckets.c.granted * step[2] // 4)
            )
        elif ids and kind == "delete":
            connection.execute(
                delete(buckets).where(buckets.c.bucket_id == ids[step[1] % len(ids)])
            )


def _disagreements(engine: Engine) -> list[reporting.TotalsDisagreement]:
    with engine.connect() as connection:
        return reporting.totals_disagreements(connection)


def _figures(engine: Engine, now: datetime, *, kept: bool) -> reporting._Figures:
    figures = reporting._Figures()
    count = reporting._count_totals if kept else reporting._count_buckets
    with engine.connect() as connection:
        count(connection, figures, program_id=PROGRAM, now=now)
    return figures


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=steps, at=instants)
def test_the_kept_totals_are_the_buckets_summed_afresh(
    engine: Engine, history: list[tuple[Any, ...]], at: list[datetime]
) -> None:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE buckets CASCADE"))
    assert _disagreements(engine) == []
    for step in history:
        _apply(engine, step)
    assert _disagreements(engine) == []
    for now in at:
        kept, counted = _figures(engine, now, kept=True), _figures(engine, now, kept=False)
        assert vars(kept) == vars(counted), now
    reporting.fold_totals(Database(engine))
    assert _disagreements(engine) == []
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM reporting_bucket_changes")).scalar() == 0
        )


def test_a_hand_worked_history(engine: Engine) -> None:
    """Two buckets of c0, one spent whole; the totals and the latest live expiry by hand."""
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE buckets CASCADE"))
    for share, lifetime in ((4, 30 * DAY), (2, None)):
        spec = {"customer": "c0", "source": "loyalty", "available": T + 5 * MINUTE,
                "lifetime": lifetime, "granted": 100, "share": share}  # fmt: skip
        _apply(engine, ("insert", spec))
    with engine.connect() as connection:
        live = connection.execute(text("SELECT customer_id, live_until = 'infinity' "
                                       "FROM reporting_accounts_live")).all()  # fmt: skip
    assert live == [("c0", True)]
    _apply(engine, ("spend", 1, 0))  # the never-expiring bucket (50 points) spent whole
    reporting.fold_totals(Database(engine))
    with engine.connect() as connection:
        cells = connection.execute(
            text("SELECT available_hour, expires_hour, points FROM reporting_bucket_totals")
        ).all()
        until = connection.execute(text("SELECT live_until FROM reporting_accounts_live")).scalar()
    assert cells == [(T, T + 30 * DAY, 100)]
    assert until == T + 5 * MINUTE + 30 * DAY
    # At T + 40 min the 100 points expire in 29 days 23 h 25 min: the 0–30 days band.
    figures = _figures(engine, T + 40 * MINUTE, kept=True)
    assert (figures.spendable, figures.pending, figures.bands[0]) == (100, 0, 100)


def test_an_hour_of_expiries_split_by_a_band_edge(engine: Engine) -> None:
    """At T + 10 min the 0–30 days band ends at T + 30 d 10 min: of the two buckets
    expiring in the hour from T + 30 d, one is in the first band, one in the second."""
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE buckets CASCADE"))
    for minutes, points in ((5, 100), (30, 40)):
        spec = {"customer": "c1", "source": "loyalty", "available": T - 2 * HOUR,
                "lifetime": 30 * DAY + 2 * HOUR + minutes * MINUTE, "granted": points,
                "share": 4}  # fmt: skip
        _apply(engine, ("insert", spec))
    figures = _figures(engine, T + 10 * MINUTE, kept=True)
    assert (figures.spendable, figures.bands[:2]) == (140, [100, 40])


_CELLS = """
SELECT source, available_hour, expires_hour = 'infinity',
       CASE WHEN expires_hour = 'infinity' THEN NULL ELSE expires_hour END, points
FROM reporting_bucket_totals ORDER BY 1, 2
"""
_LIVE = """
SELECT customer_id, live_until = 'infinity',
       CASE WHEN live_until = 'infinity' THEN NULL ELSE live_until END
FROM reporting_accounts_live ORDER BY 1
"""


def test_the_migration_fills_the_totals_from_the_buckets_there() -> None:
    with fresh_postgres() as url:
        command.upgrade(alembic_config(url), "0006_reporting_indexes")
        engine = create_database_engine(url, pool_size=1)
        with engine.begin() as connection:
            connection.execute(
                insert(accounts), [{"program_id": PROGRAM, "customer_id": c, "created_at": T}
                                   for c in CUSTOMERS]
            )  # fmt: skip
        specs = [
            ("c0", "loyalty", T, 30 * DAY, 4), ("c0", "promo", T + MINUTE, None, 2),
            ("c1", "loyalty", T + 70 * MINUTE, 60 * MINUTE, 0), ("c2", "loyalty", T, 30 * DAY, 1),
        ]  # fmt: skip
        for customer, source, available, lifetime, share in specs:
            _apply(engine, ("insert", {"customer": customer, "source": source,
                                       "available": available, "lifetime": lifetime,
                                       "granted": 400, "share": share}))  # fmt: skip
        migrate(engine)
        with engine.connect() as connection:
            cells = connection.execute(text(_CELLS)).all()
            live = connection.execute(text(_LIVE)).all()
        assert _disagreements(engine) == []
        engine.dispose()
    # c0's and c2's 30-day buckets share a cell (400 + 100); c1's is empty.
    assert cells == [
        ("loyalty", T, False, T + 30 * DAY, 500),
        ("promo", T, True, None, 200),
    ]
    assert live == [("c0", True, None), ("c2", False, T + 30 * DAY)]


def test_reconcile_names_a_total_that_drifted_from_the_buckets(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE buckets CASCADE"))
    spec = {"customer": "c2", "source": "promo", "available": T, "lifetime": None,
            "granted": 80, "share": 4}  # fmt: skip
    _apply(engine, ("insert", spec))
    reporting.fold_totals(Database(engine))
    with engine.begin() as connection:
        connection.execute(text("UPDATE reporting_bucket_totals SET points = points + 5"))
        connection.execute(text("UPDATE reporting_accounts_live SET live_until = '-infinity'"))
    assert _totals_mismatches(engine) == [
        ("", "points left, promo 2026-03-01T10:00:00Z → never", 80, 85),
        ("c2", "latest live expiry", "never", None),
    ]
    with engine.begin() as connection:
        connection.execute(text("SELECT reporting_rebuild_totals()"))
    assert _totals_mismatches(engine) == []


def _totals_mismatches(engine: Engine) -> list[tuple[str, str, object, object]]:
    """What `loyalty-server reconcile` reports of the running totals (this test's buckets
    have no ledger entries: the ledger's own mismatches are not looked at)."""
    return [
        (m.customer_id, m.what, m.expected, m.found)
        for m in reconcile(engine).mismatches
        if m.subject == "reporting totals"
    ]
