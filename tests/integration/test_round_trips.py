"""How many round trips a call makes to PostgreSQL, read off libpq's trace of the protocol.

docs/architecture.md counts them: a first apply of an order is 7 round trips (BEGIN; the
claim and the lock in one statement; the account's snapshot; the order, the attempt and the
ledger in one statement; the bucket's update; the answer; COMMIT), a replay of it 4 (BEGIN;
the claim, which finds the id taken and locks nothing; the stored answer; COMMIT), a quote
read in a transaction 3 (BEGIN; the snapshot; COMMIT). Each is what the hot-path work of
issue 14 made it: a statement that comes back as a round trip of its own fails here.

A round trip is what the client sends before it next reads: every run of frontend (F)
messages that follows a backend (B) one. The statements are prepared first (a warm-up
call), as they are in a running server.
"""

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
from sqlalchemy import Engine, event

from pricing.cart import Cart, CartLine
from pricing.program import load_programs
from server.service import commands
from server.service.apply import apply_redemption
from server.service.deps import Deps
from server.service.grant import grant_points
from server.service.quote import quote_redemption
from server.store.db import Database, create_database_engine
from server.store.migrate import migrate
from tests.support.databases import fresh_postgres

pytestmark = pytest.mark.postgres

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CART = Cart("RUB", (CartLine("l1", 1, 100_000, sku="s1"), CartLine("l2", 2, 50_000, sku="s2")))


@pytest.fixture
def deps() -> Iterator[Deps]:
    with fresh_postgres() as url:
        engine = create_database_engine(url, pool_size=1)
        migrate(engine)
        yield Deps(Database(engine), load_programs(PROGRAMS))
        engine.dispose()


def round_trips(messages: list[str]) -> int:
    """Runs of frontend messages, each ended by the backend's first answer."""
    count, last = 0, "B"
    for message in messages:
        side = message[:1]
        if side == "F" and last == "B":
            count += 1
        if side in ("F", "B"):
            last = side
    return count


@contextmanager
def traced(engine: Engine) -> Iterator[list[str]]:
    """The protocol messages of every connection checked out of `engine` inside."""
    messages: list[str] = []
    with ExitStack() as files:
        traces: list[IO[str]] = []

        def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            trace = files.enter_context(tempfile.TemporaryFile("w+"))
            traces.append(trace)
            dbapi_connection.pgconn.trace(trace.fileno())
            dbapi_connection.pgconn.set_trace_flags(
                psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
            )

        def on_checkin(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.pgconn.untrace()

        event.listen(engine, "checkout", on_checkout)
        event.listen(engine, "checkin", on_checkin)
        try:
            yield messages
        finally:
            event.remove(engine, "checkout", on_checkout)
            event.remove(engine, "checkin", on_checkin)
            for trace in traces:
                trace.seek(0)
                messages += trace.read().splitlines()


def _key(name: str) -> commands.Idempotency:
    return commands.Idempotency(name, name.encode())


def _apply_command(deps: Deps, customer: str, order: str) -> commands.ApplyRedemption:
    ask = commands.QuoteRedemption("denco", customer, CART, "")
    most = quote_redemption(deps, ask, now=NOW).options[0].max_points  # all or nothing
    return commands.ApplyRedemption(_key(f"a-{order}"), "denco", customer, order, CART, "", most, 0)


def test_a_first_apply_is_7_round_trips_its_replay_4_a_quote_3(deps: Deps) -> None:
    for customer in ("warm", "c1"):
        grant = commands.GrantPoints(
            _key(f"g-{customer}"), "denco", customer, 5_000, "loyalty", None, None, ""
        )
        grant_points(deps, grant, now=NOW - timedelta(days=1), render=repr)  # type: ignore[arg-type]
    warm = _apply_command(deps, "warm", "o-warm")
    apply_redemption(deps, warm, now=NOW, render=repr)  # type: ignore[arg-type]  # all prepared
    assert deps.db is not None
    engine = deps.db.engine
    first = _apply_command(deps, "c1", "o1")
    with traced(engine) as applied:
        apply_redemption(deps, first, now=NOW, render=repr)  # type: ignore[arg-type]
    with traced(engine) as replayed:
        apply_redemption(deps, first, now=NOW, render=repr)  # type: ignore[arg-type]
    with traced(engine) as quoted:
        quote_redemption(deps, commands.QuoteRedemption("denco", "c1", CART, ""), now=NOW)
    assert [round_trips(applied), round_trips(replayed), round_trips(quoted)] == [7, 4, 3]
