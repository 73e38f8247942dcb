"""Recorded orders read back for a what-if replay (docs/rules.md §11), streamed in one snapshot.

Three result streams share one read-only transaction, each ordered by
customer (byte order, so all three agree) and then by time: the orders of
the window with their lines, the customers' ledger entries on buckets, and
the customers' accruals (for tiers). They are merged customer by customer,
so memory holds one customer's history at a time, whatever the window.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Row, and_, func, literal_column, select

from pricing.cart import Cart
from pricing.tiers import QualifyingOrder
from pricing.whatif import RecordedOrder
from server.store.orders import cart_line
from server.store.schema import (
    LIVE_REDEMPTION,
    accruals,
    buckets,
    ledger_entries,
    order_lines,
    orders,
    redemption_lines,
    redemptions,
)

_o, _l, _r, _rl = orders.c, order_lines.c, redemptions.c, redemption_lines.c
_STREAM = {"stream_results": True, "yield_per": 2_000}


@dataclass(frozen=True)
class Window:
    program_id: str
    currency: str
    start: datetime  # inclusive
    end: datetime  # exclusive


def recorded_orders(connection: Connection, window: Window) -> Iterator[RecordedOrder]:
    """Every order first recorded in the window, with its customer's state at that instant."""
    order_rows = _stream(connection, _orders_query(connection, window))
    entry_rows = _stream(connection, _entries_query(connection, window))
    accrual_rows = _stream(connection, _accruals_query(connection, window))
    entries, history = _ByCustomer(entry_rows), _ByCustomer(accrual_rows)
    for customer_id, rows in groupby(order_rows, key=lambda row: row.customer_id):
        wallet = _Wallet(entries.take(customer_id))
        tiers = tuple(
            QualifyingOrder(row.available_at, row.amount) for row in history.take(customer_id)
        )
        for _, lines in groupby(rows, key=lambda row: row.order_id):
            yield _order(list(lines), window=window, wallet=wallet, history=tiers)


def count_orders(connection: Connection, window: Window) -> int:
    """How many orders the window holds (for a progress bar)."""
    query = select(func.count()).select_from(orders).where(_in_window(window))
    return int(connection.execute(query).scalar_one())


def _stream(connection: Connection, query: Any) -> Iterator[Row[Any]]:
    return iter(connection.execution_options(**_STREAM).execute(query))


def _in_window(window: Window) -> Any:
    return and_(
        _o.program_id == window.program_id,
        _o.created_at >= window.start,
        _o.created_at < window.end,
    )


def _by_customer(connection: Connection, column: Any) -> Any:
    """Order by customer in byte order on every backend, so the three streams agree."""
    if connection.dialect.name == "postgresql":
        return column.collate("C")
    return column


def _orders_query(connection: Connection, window: Window) -> Any:
    spent = (
        select(_rl.line_id, _rl.points, _r.order_id, _r.payment_method, _r.points.label("total"))
        .join(redemptions, _r.redemption_id == _rl.redemption_id)
        .where(_r.program_id == window.program_id, literal_column(LIVE_REDEMPTION))
        .subquery()
    )
    return (
        select(
            _o.customer_id,
            _o.order_id,
            _o.created_at,
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
            _l.whole,
            spent.c.points.label("spent"),
            spent.c.payment_method,
            spent.c.total,
        )
        .join(order_lines, and_(_l.program_id == _o.program_id, _l.order_id == _o.order_id))
        .outerjoin(spent, and_(spent.c.order_id == _o.order_id, spent.c.line_id == _l.line_id))
        .where(_in_window(window))
        .order_by(_by_customer(connection, _o.customer_id), _o.created_at, _o.order_id, _l.position)
    )


def _customers(window: Window) -> Any:
    return select(_o.customer_id).where(_in_window(window)).distinct()


def _entries_query(connection: Connection, window: Window) -> Any:
    e, b = ledger_entries.c, buckets.c
    return (
        select(e.customer_id, e.bucket_id, e.order_id, e.points, e.effective_at, b.source)
        .join(buckets, buckets.c.bucket_id == e.bucket_id)
        .add_columns(b.available_at, b.expires_at)
        .where(
            e.program_id == window.program_id,
            e.customer_id.in_(_customers(window)),
            e.effective_at <= window.end,
        )
        .order_by(_by_customer(connection, e.customer_id), e.effective_at, e.entry_id)
    )


def _accruals_query(connection: Connection, window: Window) -> Any:
    a = accruals.c
    return (
        select(
            a.customer_id,
            a.available_at,
            (a.base_minor - a.base_returned_minor).label("amount"),
        )
        .where(a.program_id == window.program_id, a.customer_id.in_(_customers(window)))
        .order_by(_by_customer(connection, a.customer_id), a.available_at)
    )


class _ByCustomer:
    """A stream's rows taken customer by customer, in the order of the orders stream.

    Its customers are a subset of the orders stream's, in the same order, so a
    customer whose rows are not next has none.
    """

    def __init__(self, rows: Iterator[Row[Any]]) -> None:
        self._groups = groupby(rows, key=lambda row: row.customer_id)
        self._next: tuple[str, Iterator[Row[Any]]] | None = next(self._groups, None)

    def take(self, customer_id: str) -> list[Row[Any]]:
        if self._next is None or self._next[0] != customer_id:
            return []
        rows = list(self._next[1])
        self._next = next(self._groups, None)
        return rows


class _Wallet:
    """A customer's buckets per the ledger when an order was placed (docs/rules.md §7).

    A bucket's entries effective at or before `t` sum to what it held at `t`,
    less the entries of the order itself (its spend is what is being priced);
    the bucket counts when it was spendable then (`available_at ≤ t < expires_at`).
    """

    def __init__(self, rows: list[Row[Any]]) -> None:
        self._rows = rows
        self._next = 0
        self._held: dict[int, int] = {}
        self._own: dict[str, dict[int, int]] = {}  # order id → bucket → its entries' points
        self._bucket: dict[int, Row[Any]] = {}

    def balances_at(self, instant: datetime, *, order_id: str) -> dict[str, int]:
        rows = self._rows
        while self._next < len(rows) and rows[self._next].effective_at <= instant:
            row = rows[self._next]
            self._held[row.bucket_id] = self._held.get(row.bucket_id, 0) + row.points
            if row.order_id:
                own = self._own.setdefault(row.order_id, {})
                own[row.bucket_id] = own.get(row.bucket_id, 0) + row.points
            self._bucket[row.bucket_id] = row
            self._next += 1
        own = self._own.get(order_id, {})
        balances: dict[str, int] = {}
        for bucket_id, points in self._held.items():
            bucket = self._bucket[bucket_id]
            live = bucket.available_at <= instant and (
                bucket.expires_at is None or instant < bucket.expires_at
            )
            points -= own.get(bucket_id, 0)
            if live and points > 0:
                balances[bucket.source] = balances.get(bucket.source, 0) + points
        return balances


def _order(
    lines: list[Row[Any]],
    *,
    window: Window,
    wallet: _Wallet,
    history: tuple[QualifyingOrder, ...],
) -> RecordedOrder:
    first = lines[0]
    cart = Cart(window.currency, tuple(cart_line(row) for row in lines))
    return RecordedOrder(
        order_id=first.order_id,
        customer_id=first.customer_id,
        placed_at=first.created_at,
        cart=cart,
        payment_method=first.payment_method or "",
        points_spent=first.total or 0,
        spent_by_line={row.line_id: row.spent for row in lines if row.spent},
        balances=wallet.balances_at(first.created_at, order_id=first.order_id),
        history=history,
        whole=all(row.whole for row in lines),
    )
