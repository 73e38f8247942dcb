"""The order read whole (docs/rules.md §6): one statement on PostgreSQL, four on SQLite.

The order with its lines, its attempts with their lines and debits, and its accrual with
its lines. PostgreSQL sends them as one row of JSON arrays (`_whole`: one round trip, and
about half the client and database CPU of the four statements, measured); SQLite runs the
four joins on the order's key (`_order_lines`, `_attempts`, `_debits`, `_accrual`). Both
give the same rows to the same assembly.
"""

from collections import namedtuple
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, text

from pricing.accrual import Accrual, AccrualLine
from pricing.buckets import DebitRecord
from pricing.order import Order, OrderLine, Redemption, RedemptionLine, RedemptionState
from server.store.hot import Hot
from server.store.orders import cart_line
from server.store.schema import (
    accrual_lines,
    accruals,
    buckets,
    order_lines,
    orders,
    redemption_debits,
    redemption_lines,
    redemptions,
)

_o, _l, _r, _rl = orders.c, order_lines.c, redemptions.c, redemption_lines.c
_d, _a, _al = redemption_debits.c, accruals.c, accrual_lines.c

# One row per line (one with NULL line columns for an order without lines).
_order_lines = Hot(
    select(
        _o.customer_id, _l.line_id, _l.quantity, _l.unit_price_minor, _l.sku, _l.category,
        _l.brand, _l.tags, _l.kind, _l.discount_minor, _l.promo_discount_minor,
        _l.returned_units, _l.whole,
    )
    .select_from(
        orders.outerjoin(
            order_lines, and_(_l.program_id == _o.program_id, _l.order_id == _o.order_id)
        )
    )
    .where(_o.program_id == bindparam("program_id"), _o.order_id == bindparam("order_id"))
    .order_by(_l.position)
)  # fmt: skip
# One row per attempt's line, oldest attempt first.
_attempts = Hot(
    select(
        _r.redemption_id, _r.customer_id, _r.state, _r.points, _r.discount_minor,
        _r.points_reversed, _r.payment_method, _r.program_version, _r.hold_expires_at,
        _r.created_at, _r.attempt, _rl.line_id, _rl.quantity.label("line_quantity"),
        _rl.points.label("line_points"), _rl.discount_minor.label("line_discount_minor"),
        _rl.returned_units,
    )
    .select_from(redemptions.outerjoin(redemption_lines, _rl.redemption_id == _r.redemption_id))
    .where(_r.program_id == bindparam("program_id"), _r.order_id == bindparam("order_id"))
    .order_by(_r.attempt, _rl.position)
)  # fmt: skip
_debits = Hot(
    select(
        _d.redemption_id, _d.bucket_id, _d.points_taken, _d.points_returned, buckets.c.expires_at
    )
    .select_from(
        redemption_debits.join(redemptions, _r.redemption_id == _d.redemption_id).join(
            buckets, buckets.c.bucket_id == _d.bucket_id
        )
    )
    .where(_r.program_id == bindparam("program_id"), _r.order_id == bindparam("order_id"))
)
# One row per accrual line (none: no accrual).
_accrual = Hot(
    select(
        _a.accrual_id, _a.customer_id, _a.points, _a.base_minor, _a.base_returned_minor,
        _a.points_clawed_back, _a.bucket_id, _a.tier_id, _a.earn_rate_bp, _a.program_version,
        _a.delivered_at, _a.available_at, _a.expires_at, _a.created_at, _al.line_id,
        _al.quantity.label("line_quantity"), _al.base_minor.label("line_base_minor"),
        _al.points.label("line_points"), _al.returned_units,
    )
    .select_from(accruals.outerjoin(accrual_lines, _al.accrual_id == _a.accrual_id))
    .where(_a.program_id == bindparam("program_id"), _a.order_id == bindparam("order_id"))
    .order_by(_al.position)
)  # fmt: skip


# The same, as JSON arrays in one row: the order's customer, its lines, its attempts (each
# with its lines and debits), its accrual (with its lines); instants as ISO 8601 text.
_whole = Hot(
    text(
        """
SELECT o.customer_id,
 (SELECT json_agg(json_build_array(l.line_id, l.quantity, l.unit_price_minor, l.sku, l.category,
    l.brand, l.tags, l.kind, l.discount_minor, l.promo_discount_minor, l.returned_units, l.whole)
    ORDER BY l.position)
  FROM order_lines l WHERE l.program_id = o.program_id AND l.order_id = o.order_id),
 (SELECT json_agg(json_build_array(r.redemption_id, r.customer_id, r.state, r.points,
    r.discount_minor, r.points_reversed, r.payment_method, r.program_version, r.hold_expires_at,
    r.created_at, r.attempt,
    (SELECT json_agg(json_build_array(rl.line_id, rl.quantity, rl.points, rl.discount_minor,
       rl.returned_units) ORDER BY rl.position)
     FROM redemption_lines rl WHERE rl.redemption_id = r.redemption_id),
    (SELECT json_agg(json_build_array(d.bucket_id, d.points_taken, d.points_returned,
       b.expires_at))
     FROM redemption_debits d JOIN buckets b ON b.bucket_id = d.bucket_id
     WHERE d.redemption_id = r.redemption_id)) ORDER BY r.attempt)
  FROM redemptions r WHERE r.program_id = o.program_id AND r.order_id = o.order_id),
 (SELECT json_build_array(a.accrual_id, a.customer_id, a.points, a.base_minor,
    a.base_returned_minor, a.points_clawed_back, a.bucket_id, a.tier_id, a.earn_rate_bp,
    a.program_version, a.delivered_at, a.available_at, a.expires_at, a.created_at,
    (SELECT json_agg(json_build_array(al.line_id, al.quantity, al.base_minor, al.points,
       al.returned_units) ORDER BY al.position)
     FROM accrual_lines al WHERE al.accrual_id = a.accrual_id))
  FROM accruals a WHERE a.program_id = o.program_id AND a.order_id = o.order_id)
FROM orders o
WHERE o.program_id = CAST(:program_id AS VARCHAR) AND o.order_id = CAST(:order_id AS VARCHAR)
"""
    )
)
_NO_LINE = (None,) * 5

# A line's row as `cart_line` reads it (by attribute).
_Line = namedtuple(
    "_Line",
    "line_id quantity unit_price_minor sku category brand tags kind discount_minor "
    "promo_discount_minor returned_units",
)


def find_order(connection: Connection, *, program_id: str, order_id: str) -> Order | None:
    """The order with its lines, every redemption attempt and its accrual."""
    key = {"program_id": program_id, "order_id": order_id}
    if connection.dialect.name == "postgresql":
        head, attempts, debits, accrual = _from_json(connection, key)
    else:
        head, attempts, debits, accrual = (
            hot.rows(connection, key) for hot in (_order_lines, _attempts, _debits, _accrual)
        )
    if not head:
        return None
    lines = tuple(
        OrderLine(cart_line(_Line._make(row[1:12])), row[11], row[12])
        for row in head
        if row[1] is not None
    )
    return Order(
        program_id,
        order_id,
        head[0][0],
        lines,
        _redemptions(program_id, order_id, attempts, debits),
        _accrual_of(program_id, order_id, accrual),
    )


def _from_json(connection: Connection, key: dict[str, str]) -> tuple[list[Any], ...]:
    """`_whole`'s row as the rows of the four statements SQLite runs."""
    found = _whole.rows(connection, key)
    if not found:
        return [], [], [], []
    customer, lines, attempts, accrual = found[0]
    head = [(customer, *line) for line in lines] if lines else [(customer, None)]
    attempt_rows, debits = [], []
    for a in attempts or ():
        top = (*a[:8], _instant(a[8]), _instant(a[9]), a[10])
        attempt_rows += [(*top, *line) for line in a[11]] if a[11] else [(*top, *_NO_LINE)]
        debits += [(a[0], d[0], d[1], d[2], _instant(d[3])) for d in a[12] or ()]
    accrual_rows = []
    if accrual is not None:
        top = (*accrual[:10], *(_instant(at) for at in accrual[10:14]))
        lines = accrual[14]
        accrual_rows = [(*top, *line) for line in lines] if lines else [(*top, *_NO_LINE)]
    return head, attempt_rows, debits, accrual_rows


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _redemptions(
    program_id: str, order_id: str, rows: Sequence[Any], debit_rows: Sequence[Any]
) -> tuple[Redemption, ...]:
    debits: dict[str, list[DebitRecord]] = {}
    for redemption_id, bucket_id, taken, returned, expires_at in debit_rows:
        debits.setdefault(redemption_id, []).append(
            DebitRecord(bucket_id, taken, returned, expires_at, bucket_id)
        )
    lines: dict[str, list[RedemptionLine]] = {}
    heads: dict[str, Sequence[Any]] = {}
    for row in rows:
        heads.setdefault(row[0], row)
        mine = lines.setdefault(row[0], [])
        if row[11] is not None:
            mine.append(RedemptionLine(*row[11:16]))
    return tuple(
        Redemption(
            redemption_id=redemption_id,
            program_id=program_id,
            order_id=order_id,
            customer_id=row[1],
            state=RedemptionState(row[2]),
            points=row[3],
            discount_minor=row[4],
            points_reversed=row[5],
            payment_method=row[6],
            program_version=row[7],
            hold_expires_at=row[8],
            created_at=row[9],
            lines=tuple(lines[redemption_id]),
            debits=tuple(debits.get(redemption_id, ())),
            attempt=row[10],
        )
        for redemption_id, row in heads.items()
    )


def _accrual_of(program_id: str, order_id: str, rows: Sequence[Any]) -> Accrual | None:
    if not rows:
        return None
    row = rows[0]
    return Accrual(
        accrual_id=row[0],
        program_id=program_id,
        order_id=order_id,
        customer_id=row[1],
        points=row[2],
        base_minor=row[3],
        base_returned_minor=row[4],
        points_clawed_back=row[5],
        bucket_id=row[6],
        tier_id=row[7],
        earn_rate_bp=row[8],
        program_version=row[9],
        delivered_at=row[10],
        available_at=row[11],
        expires_at=row[12],
        created_at=row[13],
        lines=tuple(AccrualLine(*line[14:19]) for line in rows if line[14] is not None),
    )
