"""An apply's writes on PostgreSQL: the order (when new) with its lines, the attempt with its
lines and debits and the ledger entries in one statement; then the points taken from their
buckets, a statement per bucket (inside the one statement their UPDATE was planned anew on
every call, or as a scan of every bucket: no generic plan knows how many buckets a call
takes, and the scalar UPDATE's is exact).

Two round trips instead of four, and the rows go as JSON (one text parameter each) rather
than as a dozen arrays: psycopg dumps an array element by element in Python, which cost
more client CPU than the rest of the statement (docs/benchmarks.md). The foreign keys are
checked at the statement's end, when every row is in. SQLite writes them one by one.
"""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from pricing.buckets import Debit
from pricing.ledger import LedgerEntry
from pricing.order import Order, Redemption
from server.store import buckets, ledger, orders, redemptions
from server.store.errors import DuplicateOrder, DuplicateRedemption, duplicates_as
from server.store.hot import Hot

_PLACE = Hot(
    text(
        """
WITH new_order AS (
  INSERT INTO orders (program_id, order_id, customer_id, created_at)
  SELECT CAST(:program_id AS VARCHAR), CAST(:order_id AS VARCHAR),
    CAST(:customer_id AS VARCHAR), CAST(:now AS TIMESTAMPTZ)
  WHERE CAST(:order_lines AS JSONB) IS NOT NULL
), new_order_lines AS (
  INSERT INTO order_lines (program_id, order_id, line_id, position, sku, category, brand, tags,
    kind, quantity, unit_price_minor, discount_minor, promo_discount_minor, whole)
  SELECT CAST(:program_id AS VARCHAR), CAST(:order_id AS VARCHAR), l->>0,
    CAST(n - 1 AS INTEGER), l->>1, l->>2, l->>3, l->>4, l->>5, CAST(l->>6 AS BIGINT),
    CAST(l->>7 AS BIGINT), CAST(l->>8 AS BIGINT), CAST(l->>9 AS BIGINT), CAST(l->>10 AS BOOLEAN)
  FROM jsonb_array_elements(CAST(:order_lines AS JSONB)) WITH ORDINALITY AS x(l, n)
), attempt AS (
  INSERT INTO redemptions (redemption_id, program_id, order_id, customer_id, state, attempt,
    points, discount_minor, points_reversed, payment_method, program_version, hold_expires_at,
    created_at, updated_at)
  VALUES (CAST(:redemption_id AS VARCHAR), CAST(:program_id AS VARCHAR),
    CAST(:order_id AS VARCHAR), CAST(:customer_id AS VARCHAR), CAST(:state AS VARCHAR),
    CAST(:attempt AS INTEGER), CAST(:points AS BIGINT), CAST(:discount_minor AS BIGINT),
    CAST(:points_reversed AS BIGINT), CAST(:payment_method AS VARCHAR),
    CAST(:program_version AS BIGINT), CAST(:hold_expires_at AS TIMESTAMPTZ),
    CAST(:created_at AS TIMESTAMPTZ), CAST(:created_at AS TIMESTAMPTZ))
), attempt_lines AS (
  INSERT INTO redemption_lines (redemption_id, line_id, position, quantity, points,
    discount_minor)
  SELECT CAST(:redemption_id AS VARCHAR), l->>0, CAST(n - 1 AS INTEGER),
    CAST(l->>1 AS BIGINT), CAST(l->>2 AS BIGINT), CAST(l->>3 AS BIGINT)
  FROM jsonb_array_elements(CAST(:lines AS JSONB)) WITH ORDINALITY AS x(l, n)
), attempt_debits AS (
  INSERT INTO redemption_debits (redemption_id, bucket_id, points_taken)
  SELECT CAST(:redemption_id AS VARCHAR), CAST(d->>0 AS BIGINT), CAST(d->>1 AS BIGINT)
  FROM jsonb_array_elements(CAST(:debits AS JSONB)) AS x(d)
)
INSERT INTO ledger_entries (program_id, customer_id, kind, points, source, bucket_id, order_id,
  request_id, reason, effective_at, recorded_at)
SELECT CAST(:program_id AS VARCHAR), CAST(:customer_id AS VARCHAR), e->>0,
  CAST(e->>1 AS BIGINT), e->>2, CAST(e->>3 AS BIGINT), e->>4, CAST(:request_id AS VARCHAR),
  e->>5, CAST(e->>6 AS TIMESTAMPTZ), CAST(:now AS TIMESTAMPTZ)
FROM jsonb_array_elements(CAST(:entries AS JSONB)) AS x(e)
"""
    )
)


def place(
    connection: Connection,
    *,
    order: Order | None,
    redemption: Redemption,
    taken: Sequence[Debit],
    entries: Sequence[LedgerEntry],
    request_id: str,
    now: datetime,
) -> None:
    """`DuplicateOrder` when the new `order` was recorded meanwhile, `DuplicateRedemption`
    when the order got a live redemption meanwhile."""
    if connection.dialect.name == "postgresql":
        params = _params(order, redemption, entries, request_id=request_id, now=now)
        # Two calls recording the same new order at once may collide on its lines first.
        with (
            duplicates_as(DuplicateOrder, tables=("orders", "order_lines")),
            duplicates_as(DuplicateRedemption, tables=("redemptions",)),
        ):
            _PLACE.run(connection, params)
    else:
        if order is not None:
            orders.add_order(connection, order, now=now)
        redemptions.add_redemption(connection, redemption)
        ledger.append(
            connection,
            entries,
            program_id=redemption.program_id,
            customer_id=redemption.customer_id,
            request_id=request_id,
            now=now,
        )
    buckets.take(connection, taken)


def _params(
    order: Order | None,
    redemption: Redemption,
    entries: Sequence[LedgerEntry],
    *,
    request_id: str,
    now: datetime,
) -> dict[str, Any]:
    """The rows as JSON arrays of arrays, in the statement's column order (a line's position
    is its place in the array)."""
    return {
        **redemptions.attempt_row(redemption),
        "now": now,
        "request_id": request_id,
        "order_lines": None if order is None else _json(_order_lines(order)),
        "lines": _json(
            [[x.line_id, x.quantity, x.points, x.discount_minor] for x in redemption.lines]
        ),
        "debits": _json([[d.bucket_id, d.taken] for d in redemption.debits]),
        "entries": _json(
            [
                [e.kind, e.points, e.source, e.bucket_id, e.order_id, e.reason,
                 e.effective_at.isoformat()]
                for e in entries
                if e.points
            ]
        ),
    }  # fmt: skip


def _order_lines(order: Order) -> list[list[Any]]:
    return [
        [
            x.line.line_id, x.line.sku, x.line.category, x.line.brand,
            json.dumps(list(x.line.tags)) if x.line.tags else "[]", x.line.kind.value,
            x.line.quantity, x.line.unit_price_minor, x.line.discount_minor,
            x.line.promo_discount_minor, x.whole,
        ]
        for x in order.lines
    ]  # fmt: skip


_json = json.JSONEncoder(separators=(",", ":")).encode
