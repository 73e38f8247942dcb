"""Every hot statement gets PostgreSQL's generic plan after a burst (server/store/hot.py).

A prepared statement is planned for its parameters five times; from then on PostgreSQL
uses the generic plan unless it costs more than the custom ones. A constant sent as a
parameter (`state = $1` where `state = 'HELD'` belongs) keeps the generic plan from the
partial indexes, so the statement is planned anew on every call, for ever (issue 14 saw
≈ 150 µs of PostgreSQL CPU a call where ≈ 55 µs do). This fails when one comes back.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pricing.cart import Cart, CartLine
from pricing.reversal import ReturnedLine
from server.service import commands
from server.service.apply import apply_redemption
from server.service.capture import capture_redemption
from server.service.deps import Deps
from server.service.grant import grant_points
from server.service.quote import quote_redemption
from server.service.reverse import reverse_redemption
from tests.integration.common import key, postgres_deps

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BURST = 12  # calls of each kind: more than the five custom plans PostgreSQL starts with


@pytest.fixture
def deps() -> Iterator[Deps]:
    with postgres_deps() as made:
        yield made


def _cart() -> Cart:
    lines = tuple(CartLine(f"l{i}", 1 + i % 2, 100_000 + 100 * i, sku=f"s{i}") for i in range(5))
    return Cart("RUB", lines)


def _burst(deps: Deps) -> None:
    render = repr
    for n in range(BURST):
        customer = f"c{n}"
        grant = commands.GrantPoints(
            key(f"g{n}"), "stomatorg", customer, 5_000, "loyalty", None, None, ""
        )
        grant_points(deps, grant, now=NOW, render=render)  # type: ignore[arg-type]
        quote = commands.QuoteRedemption("stomatorg", customer, _cart(), "")
        points = quote_redemption(deps, quote, now=NOW).options[0].max_points
        apply = commands.ApplyRedemption(
            key(f"a{n}"), "stomatorg", customer, f"o{n}", _cart(), "", points, 0
        )
        apply_redemption(deps, apply, now=NOW, render=render)  # type: ignore[arg-type]
        back = commands.ReverseRedemption(
            key(f"r{n}"), "stomatorg", f"o{n}", (ReturnedLine("l1", 1),), ""
        )
        reverse_redemption(deps, back, now=NOW, render=render)  # type: ignore[arg-type]
        held = commands.ApplyRedemption(
            key(f"h{n}"), "stomatorg", customer, f"h{n}", _cart(), "", 1, 3600
        )
        apply_redemption(deps, held, now=NOW, render=render)  # type: ignore[arg-type]
        capture = commands.CaptureRedemption(key(f"c{n}"), "stomatorg", f"h{n}")
        capture_redemption(deps, capture, now=NOW, render=render)  # type: ignore[arg-type]


def test_hot_statements_get_generic_plans(deps: Deps) -> None:
    _burst(deps)
    assert deps.db is not None
    with deps.db.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        ).all()
    burst = [row for row in rows if row.generic_plans + row.custom_plans >= BURST]
    # The hot statements: the account's snapshot, the request-id claim, the lock, an apply's
    # writes (server/store/placement.py: one statement), a capture's, the answer, a return's
    # order customer, whole order and writes; at least these ran as often as the burst.
    texts = " ".join(row.statement for row in burst)
    for table in ("FROM accounts LEFT OUTER JOIN buckets", "INSERT INTO idempotency_keys",
                  "INSERT INTO accounts", "INSERT INTO redemptions", "UPDATE buckets",
                  "SELECT orders.customer_id \nFROM orders", "json_agg(json_build_array(l.line_id",
                  "WITH order_units AS",
                  "INSERT INTO order_lines", "INSERT INTO ledger_entries",
                  "UPDATE idempotency_keys", "UPDATE redemptions SET state"):  # fmt: skip
        assert table in texts, f"{table!r} was not prepared: {[r.statement[:60] for r in rows]}"
    custom_only = [
        (row.statement[:120], row.custom_plans) for row in burst if row.generic_plans == 0
    ]
    assert custom_only == [], "planned anew on every call (a constant sent as a parameter?)"
