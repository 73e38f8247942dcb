"""Quotes read on the event loop (server/store/loop_pool.py, `quote_on_loop`) on PostgreSQL.

The quote a one-tier program's account without holds gets from its one statement sent
alone on the loop is the quote the worker thread's transaction gives, to the point; an
account with a hold, or a program of several tiers, is left to the thread (None). A
read the database does not answer there (a dropped connection, no connection to be had)
goes to the thread too, whose engine retries a dropped connection and answers a database
out of reach `DatabaseUnavailable`.
"""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pricing.cart import Cart, CartLine
from pricing.program import load_programs
from server.metrics import Metrics
from server.service import commands
from server.service.apply import apply_redemption
from server.service.deps import Deps
from server.service.grant import grant_points
from server.service.quote import quote_on_loop, quote_redemption
from server.store.db import Database, DatabaseUnavailable, create_database_engine
from server.store.loop_pool import LoopPool
from server.store.migrate import migrate
from tests.support.databases import fresh_postgres

pytestmark = pytest.mark.postgres

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
# Two lines of 1,000.00 RUB each.
CART = Cart("RUB", (CartLine("l1", 1, 100_000, sku="s1"), CartLine("l2", 2, 50_000, sku="s2")))


class Counted(Metrics):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def retried(self, kind: str) -> None:
        self.events.append(f"retried {kind}")
        super().retried(kind)

    def failed(self, kind: str) -> None:
        self.events.append(f"failed {kind}")
        super().failed(kind)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def deps(loop: asyncio.AbstractEventLoop) -> Iterator[Deps]:
    with fresh_postgres() as url:
        engine = create_database_engine(url, pool_size=2)
        migrate(engine)
        metrics = Counted()
        pool = LoopPool(engine, size=2, observer=metrics)
        loop.run_until_complete(pool.open())
        yield Deps(Database(engine), load_programs(PROGRAMS), metrics, loop_pool=pool)
        loop.run_until_complete(pool.close())
        engine.dispose()


def _key(name: str) -> commands.Idempotency:
    return commands.Idempotency(name, name.encode())


def _grant(deps: Deps, customer: str, points: int, *, expires: datetime | None = None) -> None:
    grant = commands.GrantPoints(
        _key(f"g-{customer}-{points}"), "denco", customer, points, "loyalty", None, expires, ""
    )
    grant_points(deps, grant, now=NOW - timedelta(days=1), render=repr)  # type: ignore[arg-type]


def test_the_quote_on_the_loop_is_the_quote_on_the_thread(
    deps: Deps, loop: asyncio.AbstractEventLoop
) -> None:
    _grant(deps, "c1", 700)
    _grant(deps, "c1", 300, expires=NOW + timedelta(days=30))
    ask = commands.QuoteRedemption("denco", "c1", CART, "")
    on_loop = loop.run_until_complete(quote_on_loop(deps, ask, now=NOW))
    assert on_loop is not None
    assert on_loop.spendable_points == 1_000
    assert on_loop == quote_redemption(deps, ask, now=NOW)


def test_an_unknown_customer_reads_as_an_empty_account(
    deps: Deps, loop: asyncio.AbstractEventLoop
) -> None:
    ask = commands.QuoteRedemption("denco", "nobody", CART, "")
    on_loop = loop.run_until_complete(quote_on_loop(deps, ask, now=NOW))
    assert on_loop is not None and on_loop.spendable_points == 0
    assert on_loop == quote_redemption(deps, ask, now=NOW)


def test_an_account_with_a_hold_is_left_to_the_thread(
    deps: Deps, loop: asyncio.AbstractEventLoop
) -> None:
    _grant(deps, "c2", 5_000)
    ask = commands.QuoteRedemption("denco", "c2", CART, "")
    most = quote_redemption(deps, ask, now=NOW).options[0].max_points  # all or nothing
    hold = commands.ApplyRedemption(_key("hold"), "denco", "c2", "o1", CART, "", most, 3_600)
    apply_redemption(deps, hold, now=NOW, render=repr)  # type: ignore[arg-type]
    assert loop.run_until_complete(quote_on_loop(deps, ask, now=NOW)) is None
    assert quote_redemption(deps, ask, now=NOW).spendable_points == 5_000 - most


def test_a_program_of_several_tiers_is_left_to_the_thread(
    deps: Deps, loop: asyncio.AbstractEventLoop
) -> None:
    ask = commands.QuoteRedemption("stomatorg", "c3", CART, "")
    assert loop.run_until_complete(quote_on_loop(deps, ask, now=NOW)) is None


def test_a_dropped_connection_sends_the_quote_to_the_thread_and_empties_the_pool(
    deps: Deps, loop: asyncio.AbstractEventLoop
) -> None:
    _grant(deps, "c4", 500)
    ask = commands.QuoteRedemption("denco", "c4", CART, "")
    assert loop.run_until_complete(quote_on_loop(deps, ask, now=NOW)) is not None
    assert deps.db is not None
    url = deps.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    # This one meets the dropped connection: the thread's read answers it instead …
    assert loop.run_until_complete(quote_on_loop(deps, ask, now=NOW)) is None
    assert quote_redemption(deps, ask, now=NOW).spendable_points == 500
    # … and the loop's pool was emptied: the next quote is read on the loop again.
    quote = loop.run_until_complete(quote_on_loop(deps, ask, now=NOW))
    assert quote is not None and quote.spendable_points == 500
    assert deps.metrics.events == ["retried connection"]  # type: ignore[attr-defined]


def test_a_database_out_of_reach_is_unavailable(loop: asyncio.AbstractEventLoop) -> None:
    """The loop's pool finds no connection: the quote goes to the thread, whose engine
    answers `DatabaseUnavailable` as for any other call."""
    engine = create_database_engine("postgresql://postgres@127.0.0.1:9/none", pool_size=1)
    metrics = Counted()
    pool = LoopPool(engine, size=1, observer=metrics)
    loop.run_until_complete(pool.open())
    deps = Deps(Database(engine, observer=metrics), load_programs(PROGRAMS), metrics,
                loop_pool=pool)  # fmt: skip
    ask = commands.QuoteRedemption("denco", "c5", CART, "")
    assert loop.run_until_complete(quote_on_loop(deps, ask, now=NOW)) is None
    with pytest.raises(DatabaseUnavailable):
        quote_redemption(deps, ask, now=NOW)
    assert metrics.events == ["retried connection", "failed unavailable"]
    loop.run_until_complete(pool.close())
