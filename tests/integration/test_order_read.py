"""The order read whole on PostgreSQL (one statement of JSON arrays) is the same Order that
the four joins SQLite runs give (server/store/order_read.py), in every shape an order takes:
lines only, a released hold and a retry, a capture, an accrual, a part return, no lines."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from pricing.cart import Cart, CartLine, LineKind
from pricing.reversal import ReturnedLine
from server.service import commands
from server.service.accrue import accrue_order
from server.service.apply import apply_redemption
from server.service.capture import capture_redemption
from server.service.deps import Deps
from server.service.grant import grant_points
from server.service.reverse import reverse_redemption
from server.store import order_read
from tests.integration.common import key, postgres_deps

NOW = datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)
P = "stomatorg"


@pytest.fixture
def deps() -> Iterator[Deps]:
    with postgres_deps() as made:
        yield made


def _cart() -> Cart:
    lines = (
        CartLine("a", 2, 100_000, sku="s-a", category="tools", brand="Acme", tags=("x", "y")),
        CartLine("b", 1, 50_000, discount_minor=5_000, kind=LineKind.SERVICE),
        CartLine("c", 3, 10_000, promo_discount_minor=300),
    )
    return Cart("RUB", lines)


def _orders(deps: Deps) -> None:
    """Orders in each shape, written through the use cases."""
    render: Any = repr
    grant = commands.GrantPoints(key("g"), P, "alice", 50_000, "loyalty", None, None, "")
    grant_points(deps, grant, now=NOW, render=render)

    def apply(order: str, n: int, hold: int = 0) -> None:
        command = commands.ApplyRedemption(
            key(f"{order}-{n}"), P, "alice", order, _cart(), "", 60, hold
        )
        apply_redemption(deps, command, now=NOW + timedelta(seconds=n), render=render)

    def reverse(order: str, n: int, *lines: ReturnedLine) -> None:
        command = commands.ReverseRedemption(key(f"r-{order}-{n}"), P, order, lines, "why")
        reverse_redemption(deps, command, now=NOW + timedelta(seconds=n), render=render)

    apply("applied", 1)
    apply("retried", 2, hold=600)
    reverse("retried", 3)  # the hold released whole
    apply("retried", 4, hold=600)
    capture = commands.CaptureRedemption(key("c-retried"), P, "retried")
    capture_redemption(deps, capture, now=NOW + timedelta(seconds=5), render=render)
    apply("returned", 6)
    accrue = commands.AccrueOrder(
        key("accrue"), P, "alice", "returned", _cart(), NOW + timedelta(seconds=7)
    )
    accrue_order(deps, accrue, now=NOW + timedelta(seconds=7), render=render)
    reverse("returned", 8, ReturnedLine("a", 1), ReturnedLine("c", 2))


def _by_joins(connection: Connection, order_id: str) -> Any:
    """The order as the SQLite path reads it, on PostgreSQL."""
    saved = order_read._from_json
    statements = (
        order_read._order_lines, order_read._attempts, order_read._debits, order_read._accrual,
    )  # fmt: skip
    order_read._from_json = lambda c, key: tuple(s.rows(c, key) for s in statements)
    try:
        return order_read.find_order(connection, program_id=P, order_id=order_id)
    finally:
        order_read._from_json = saved


def test_one_statement_reads_what_the_four_joins_read(deps: Deps) -> None:
    _orders(deps)
    assert deps.db is not None
    engine: Engine = deps.db.engine
    with engine.begin() as connection:
        # An order without lines (as migrated rows may be) reads too.
        connection.execute(
            text(
                "INSERT INTO orders (program_id, order_id, customer_id, created_at) "
                "VALUES (:p, 'bare', 'alice', now())"
            ),
            {"p": P},
        )
    with engine.connect() as connection:
        for order_id in ("applied", "retried", "returned", "bare"):
            whole = order_read.find_order(connection, program_id=P, order_id=order_id)
            assert whole is not None
            assert whole == _by_joins(connection, order_id), order_id
        returned = order_read.find_order(connection, program_id=P, order_id="returned")
        assert returned is not None and returned.accrual is not None
        assert [x.returned_units for x in returned.lines] == [1, 0, 2]
        retried = order_read.find_order(connection, program_id=P, order_id="retried")
        assert retried is not None
        assert [(r.attempt, r.state.value) for r in retried.attempts] == [
            (1, "RELEASED"), (2, "APPLIED"),
        ]  # fmt: skip
        assert order_read.find_order(connection, program_id=P, order_id="nothing") is None
