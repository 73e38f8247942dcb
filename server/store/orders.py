"""Orders (docs/rules.md §6): the order row, its whole lines, the aggregate read back in full."""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update

from pricing.cart import CartLine, LineKind
from pricing.order import Order
from server.store.errors import DuplicateOrder, duplicates_as
from server.store.hot import Hot
from server.store.schema import order_lines, orders

_o, _l = orders.c, order_lines.c

_insert_order = insert(orders)  # SQLite
# The order's lines in one statement (psycopg prepares it once whatever the line count).
_insert_lines = insert(order_lines)
_order = Hot(
    select(_o.customer_id).where(
        _o.program_id == bindparam("program_id"), _o.order_id == bindparam("order_id")
    )
)
_return_units = (
    update(order_lines)
    .where(
        _l.program_id == bindparam("p_id"),
        _l.order_id == bindparam("o_id"),
        _l.line_id == bindparam("l_id"),
    )
    .values(returned_units=_l.returned_units + bindparam("units"))
)


# On PostgreSQL the order and its lines go as one statement (a data-modifying CTE; the lines'
# foreign key is checked at its end, when the order is in): one round trip.
_insert_whole = Hot(
    text(
        """
WITH new_order AS (
  INSERT INTO orders (program_id, order_id, customer_id, created_at)
  VALUES (CAST(:program_id AS VARCHAR), CAST(:order_id AS VARCHAR),
    CAST(:customer_id AS VARCHAR), CAST(:created_at AS TIMESTAMPTZ))
)
INSERT INTO order_lines (program_id, order_id, line_id, position, sku, category, brand, tags,
  kind, quantity, unit_price_minor, discount_minor, promo_discount_minor, whole)
SELECT CAST(:program_id AS VARCHAR), CAST(:order_id AS VARCHAR), l.*
FROM unnest(CAST(:line_ids AS VARCHAR[]), CAST(:positions AS INTEGER[]),
  CAST(:skus AS VARCHAR[]), CAST(:categories AS VARCHAR[]), CAST(:brands AS VARCHAR[]),
  CAST(:tags AS TEXT[]), CAST(:kinds AS VARCHAR[]), CAST(:quantities AS BIGINT[]),
  CAST(:prices AS BIGINT[]), CAST(:discounts AS BIGINT[]), CAST(:promos AS BIGINT[]),
  CAST(:wholes AS BOOLEAN[]))
  AS l(line_id, position, sku, category, brand, tags, kind, quantity, unit_price_minor,
       discount_minor, promo_discount_minor, whole)
"""
    )
)


def _whole(order: Order, now: datetime) -> dict[str, Any]:
    lines = [x.line for x in order.lines]
    return {
        "program_id": order.program_id,
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "created_at": now,
        "line_ids": [line.line_id for line in lines],
        "positions": list(range(len(lines))),
        "skus": [line.sku for line in lines],
        "categories": [line.category for line in lines],
        "brands": [line.brand for line in lines],
        "tags": [json.dumps(list(line.tags)) for line in lines],
        "kinds": [line.kind.value for line in lines],
        "quantities": [line.quantity for line in lines],
        "prices": [line.unit_price_minor for line in lines],
        "discounts": [line.discount_minor for line in lines],
        "promos": [line.promo_discount_minor for line in lines],
        "wholes": [x.whole for x in order.lines],
    }


def add_order(connection: Connection, order: Order, *, now: datetime) -> None:
    """Record a new order and its lines; `DuplicateOrder` when it was recorded meanwhile."""
    if connection.dialect.name == "postgresql":
        # Two calls recording the same new order at once may collide on its lines first.
        with duplicates_as(DuplicateOrder, tables=("orders", "order_lines")):
            _insert_whole.run(connection, _whole(order, now))
        return
    with duplicates_as(DuplicateOrder):
        connection.execute(
            _insert_order,
            {
                "program_id": order.program_id,
                "order_id": order.order_id,
                "customer_id": order.customer_id,
                "created_at": now,
            },
        )
    connection.execute(
        _insert_lines,
        [
            {
                "program_id": order.program_id,
                "order_id": order.order_id,
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
        ],
    )


def cart_line(row: Any) -> CartLine:
    """A recorded line (a row of `order_lines`) as the cart line it was."""
    tags = () if row.tags == "[]" else tuple(json.loads(row.tags))
    return CartLine(
        row.line_id,
        row.quantity,
        row.unit_price_minor,
        row.sku,
        row.category,
        row.brand,
        tags,
        LineKind(row.kind),
        row.discount_minor,
        row.promo_discount_minor,
    )


def order_customer(connection: Connection, *, program_id: str, order_id: str) -> str | None:
    """The order's customer (None: no such order)."""
    found = _order.rows(connection, {"program_id": program_id, "order_id": order_id})
    return found[0][0] if found else None


def record_line_returns(
    connection: Connection, *, program_id: str, order_id: str, units: Mapping[str, int]
) -> None:
    params = [
        {"p_id": program_id, "o_id": order_id, "l_id": line_id, "units": count}
        for line_id, count in units.items()
        if count
    ]
    if params:
        connection.execute(_return_units, params)
