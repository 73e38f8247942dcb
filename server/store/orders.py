"""Orders (docs/rules.md §6): the order row, its whole lines, the aggregate read back in full."""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from pricing.cart import CartLine, LineKind
from pricing.order import Order, OrderLine
from server.store.accruals import find_accrual
from server.store.errors import DuplicateOrder, duplicates_as
from server.store.hot import Hot, RowsInsert
from server.store.redemptions import order_attempts
from server.store.schema import order_lines, orders

_o, _l = orders.c, order_lines.c

_insert_order = Hot(insert(orders), keys=("program_id", "order_id", "customer_id", "created_at"))
# The order's lines in one statement (psycopg prepares it once whatever the line count).
_insert_lines = RowsInsert(
    order_lines,
    fixed=("program_id", "order_id"),
    arrays=(
        "line_id", "position", "sku", "category", "brand", "tags", "kind", "quantity",
        "unit_price_minor", "discount_minor", "promo_discount_minor", "whole",
    ),
)  # fmt: skip
_order = select(_o.customer_id).where(
    _o.program_id == bindparam("program_id"), _o.order_id == bindparam("order_id")
)
_lines = (
    select(
        _l.line_id,
        _l.quantity,
        _l.unit_price_minor,
        _l.sku,
        _l.category,
        _l.brand,
        _l.tags,
        _l.kind,
        _l.discount_minor,
        _l.promo_discount_minor,
        _l.returned_units,
        _l.whole,
    )
    .where(_l.program_id == bindparam("program_id"), _l.order_id == bindparam("order_id"))
    .order_by(_l.position)
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


def add_order(connection: Connection, order: Order, *, now: datetime) -> None:
    """Record a new order and its lines; `DuplicateOrder` when it was recorded meanwhile."""
    with duplicates_as(DuplicateOrder):
        _insert_order.run(
            connection,
            {
                "program_id": order.program_id,
                "order_id": order.order_id,
                "customer_id": order.customer_id,
                "created_at": now,
            },
        )
    _insert_lines.insert(
        connection,
        {"program_id": order.program_id, "order_id": order.order_id},
        [
            (
                x.line.line_id, position, x.line.sku, x.line.category, x.line.brand,
                json.dumps(list(x.line.tags)), x.line.kind.value, x.line.quantity,
                x.line.unit_price_minor, x.line.discount_minor, x.line.promo_discount_minor,
                x.whole,
            )
            for position, x in enumerate(order.lines)
        ],
    )  # fmt: skip


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


def find_order(connection: Connection, *, program_id: str, order_id: str) -> Order | None:
    """The order with its lines, every redemption attempt and its accrual."""
    key = {"program_id": program_id, "order_id": order_id}
    customer_id = connection.execute(_order, key).scalar()
    if customer_id is None:
        return None
    lines = tuple(
        OrderLine(
            cart_line(row),
            row.returned_units,
            row.whole,
        )
        for row in connection.execute(_lines, key)
    )
    return Order(
        program_id,
        order_id,
        customer_id,
        lines,
        order_attempts(connection, program_id=program_id, order_id=order_id),
        find_accrual(connection, program_id=program_id, order_id=order_id),
    )


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
