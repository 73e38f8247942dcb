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
  SELECT CAST(:program_id AS VARCHAR), CAST(:order_id AS VARCHAR), l.line_id, l.position,
    l.sku, l.category, l.brand, l.tags, l.kind, l.quantity, l.unit_price_minor,
    l.discount_minor, l.promo_discount_minor, l.whole
  FROM jsonb_to_recordset(CAST(:order_lines AS JSONB)) AS l(line_id VARCHAR, position INTEGER,
    sku VARCHAR, category VARCHAR, brand VARCHAR, tags TEXT, kind VARCHAR, quantity BIGINT,
    unit_price_minor BIGINT, discount_minor BIGINT, promo_discount_minor BIGINT, whole BOOLEAN)
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
  SELECT CAST(:redemption_id AS VARCHAR), l.line_id, l.position, l.quantity, l.points,
    l.discount_minor
  FROM jsonb_to_recordset(CAST(:lines AS JSONB)) AS l(line_id VARCHAR, position INTEGER,
    quantity BIGINT, points BIGINT, discount_minor BIGINT)
), attempt_debits AS (
  INSERT INTO redemption_debits (redemption_id, bucket_id, points_taken)
  SELECT CAST(:redemption_id AS VARCHAR), d.bucket_id, d.points
  FROM jsonb_to_recordset(CAST(:debits AS JSONB)) AS d(bucket_id BIGINT, points BIGINT)
)
INSERT INTO ledger_entries (program_id, customer_id, kind, points, source, bucket_id, order_id,
  request_id, reason, effective_at, recorded_at)
SELECT CAST(:program_id AS VARCHAR), CAST(:customer_id AS VARCHAR), e.kind, e.points, e.source,
  e.bucket_id, e.order_id, CAST(:request_id AS VARCHAR), e.reason, e.effective_at,
  CAST(:now AS TIMESTAMPTZ)
FROM jsonb_to_recordset(CAST(:entries AS JSONB)) AS e(kind VARCHAR, points BIGINT,
  source VARCHAR, bucket_id BIGINT, order_id VARCHAR, reason VARCHAR, effective_at TIMESTAMPTZ)
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
    return {
        **redemptions.attempt_row(redemption),
        "now": now,
        "request_id": request_id,
        "order_lines": None if order is None else _json(_order_lines(order)),
        "lines": _json(
            [
                {
                    "line_id": line.line_id,
                    "position": position,
                    "quantity": line.quantity,
                    "points": line.points,
                    "discount_minor": line.discount_minor,
                }
                for position, line in enumerate(redemption.lines)
            ]
        ),
        "debits": _json([{"bucket_id": d.bucket_id, "points": d.taken} for d in redemption.debits]),
        "entries": _json(
            [
                {
                    "kind": e.kind,
                    "points": e.points,
                    "source": e.source,
                    "bucket_id": e.bucket_id,
                    "order_id": e.order_id,
                    "reason": e.reason,
                    "effective_at": e.effective_at.isoformat(),
                }
                for e in entries
                if e.points
            ]
        ),
    }


def _order_lines(order: Order) -> list[dict[str, Any]]:
    return [
        {
            "line_id": x.line.line_id,
            "position": position,
            "sku": x.line.sku,
            "category": x.line.category,
            "brand": x.line.brand,
            "tags": json.dumps(list(x.line.tags)),
            "kind": x.line.kind.value,
            "quantity": x.line.quantity,
            "unit_price_minor": x.line.unit_price_minor,
            "discount_minor": x.line.discount_minor,
            "promo_discount_minor": x.line.promo_discount_minor,
            "whole": x.whole,
        }
        for position, x in enumerate(order.lines)
    ]


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, separators=(",", ":"))
