"""Recorded orders read back for a what-if replay (docs/rules.md §11), streamed in one snapshot.

Three result streams share one read-only transaction, each ordered by
customer (byte order, so all three agree) and then by time: the orders of
the window (one row each), the customers' ledger entries on buckets, and
the customers' accruals (for tiers). They are merged customer by customer,
so memory holds one customer's history at a time, whatever the window. The
orders' lines are read by primary key, 500 orders at a time.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import groupby, islice, pairwise
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Connection,
    Row,
    and_,
    bindparam,
    func,
    literal_column,
    select,
    true,
    type_coerce,
)

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
_CHUNK = 500  # orders whose lines one query fetches
_LINE_FIELDS = (
    "line_id", "quantity", "unit_price_minor", "sku", "category", "brand", "tags", "kind",
    "discount_minor", "promo_discount_minor",
)  # fmt: skip


class _Line(NamedTuple):
    """A recorded line as `cart_line` reads it."""

    position: int
    line_id: str
    quantity: int
    unit_price_minor: int
    sku: str
    category: str
    brand: str
    tags: str  # a JSON array of strings, as stored
    kind: str
    discount_minor: int
    promo_discount_minor: int
    whole: bool


@dataclass(frozen=True)
class Window:
    program_id: str
    currency: str
    start: datetime  # inclusive
    end: datetime  # exclusive
    # Only customers in [first, after) in byte order (None: unbounded), for one worker's part.
    customers: tuple[str | None, str | None] = (None, None)


def recorded_orders(connection: Connection, window: Window) -> Iterator[RecordedOrder]:
    """Every order first recorded in the window, with its customer's state at that instant."""
    order_rows = _stream(connection, _orders_query(connection, window))
    entry_rows = _stream(connection, _entries_query(connection, window))
    accrual_rows = _stream(connection, _accruals_query(connection, window))
    entries, history = _ByCustomer(entry_rows), _ByCustomer(accrual_rows)
    with_lines = _with_lines(connection, window, order_rows)
    for customer_id, rows in groupby(with_lines, key=lambda each: each[0].customer_id):
        wallet = _Wallet(entries.take(customer_id))
        tiers = tuple(
            QualifyingOrder(row.available_at, row.amount) for row in history.take(customer_id)
        )
        for row, lines, spent in rows:
            yield _order(row, lines, spent, window=window, wallet=wallet, history=tiers)


def count_orders(connection: Connection, window: Window) -> int:
    """How many orders the window holds (for a progress bar)."""
    query = select(func.count()).select_from(orders).where(_in_window(connection, window))
    return int(connection.execute(query).scalar_one())


def _stream(connection: Connection, query: Any) -> Iterator[Row[Any]]:
    # Options of this statement only: `Connection.execution_options` would stream every
    # later statement on the connection too (the lines' lookups, read whole, included).
    return iter(connection.execute(query, execution_options=_STREAM))


def _in_window(connection: Connection, window: Window) -> Any:
    first, after = window.customers
    customer = _by_customer(connection, _o.customer_id)
    return and_(
        _o.program_id == window.program_id,
        _o.created_at >= window.start,
        _o.created_at < window.end,
        true() if first is None else customer >= first,
        true() if after is None else customer < after,
    )


def customer_ranges(connection: Connection, window: Window, parts: int) -> list[Window]:
    """The window split by customer (byte order) into up to `parts` of about as many orders."""
    tile = func.ntile(parts).over(order_by=_by_customer(connection, _o.customer_id))
    tiles = select(_o.customer_id, tile.label("tile")).where(_in_window(connection, window))
    sub = tiles.subquery()
    query = select(func.min(_by_customer(connection, sub.c.customer_id))).group_by(sub.c.tile)
    firsts = sorted({first for (first,) in connection.execute(query)})
    bounds: list[str | None] = [None, *firsts[1:], None]
    return [replace(window, customers=pair) for pair in pairwise(bounds)]


def _by_customer(connection: Connection, column: Any) -> Any:
    """Order by customer in byte order on every backend, so the three streams agree."""
    if connection.dialect.name == "postgresql":
        return column.collate("C")
    return column


def _orders_query(connection: Connection, window: Window) -> Any:
    """One row per order: its customer, instant, and live redemption (method, points)."""
    live = and_(
        _r.program_id == _o.program_id, _r.order_id == _o.order_id, literal_column(LIVE_REDEMPTION)
    )
    return (
        select(
            _o.customer_id,
            _o.order_id,
            _o.created_at,
            _r.redemption_id,
            _r.payment_method,
            _r.points,
        )
        .select_from(orders.outerjoin(redemptions, live))
        .where(_in_window(connection, window))
        .order_by(_by_customer(connection, _o.customer_id), _o.created_at, _o.order_id)
    )


def _with_lines(
    connection: Connection, window: Window, order_rows: Iterator[Row[Any]]
) -> Iterator[tuple[Row[Any], list[_Line], dict[str, int]]]:
    """Each order row with its lines and the points its redemption spent on each.

    They are read for `_CHUNK` orders at a time, one query each, by primary key.
    """
    lines_query, spent_query = _lines_queries(connection)
    while chunk := list(islice(order_rows, _CHUNK)):
        order_ids = [row.order_id for row in chunk]
        found = connection.execute(lines_query, {"program_id": window.program_id, "ids": order_ids})
        lines = {order_id: _lines(values) for order_id, values in found}
        redemption_ids = [row.redemption_id for row in chunk if row.redemption_id]
        spent: dict[str, list[list[Any]]] = {}
        if redemption_ids:
            spent = dict(iter(connection.execute(spent_query, {"ids": redemption_ids})))
        for row in chunk:
            by_line = dict(spent.get(row.redemption_id, ()))
            yield row, lines.get(row.order_id, []), by_line


def _lines(values: list[list[Any]]) -> list[_Line]:
    """An order's lines in their position order, from its aggregated JSON arrays."""
    return [_Line._make(each) for each in sorted(values, key=itemgetter(0))]


def _lines_queries(connection: Connection) -> tuple[Any, Any]:
    """Some orders' lines, and some redemptions' points per line: one row per order each.

    Each row aggregates the order's lines as JSON arrays (fewer rows to fetch and decode).
    """
    if connection.dialect.name == "postgresql":
        aggregate, array = func.json_agg, func.json_build_array
    else:
        aggregate, array = func.json_group_array, func.json_array
    ids: Any = bindparam("ids", expanding=True)
    fields = (_l.position, *(_l[name] for name in _LINE_FIELDS), _l.whole)
    lines = (
        select(_l.order_id, type_coerce(aggregate(array(*fields)), JSON))
        .where(_l.program_id == bindparam("program_id"), _l.order_id.in_(ids))
        .group_by(_l.order_id)
    )
    spent = (
        select(_rl.redemption_id, type_coerce(aggregate(array(_rl.line_id, _rl.points)), JSON))
        .where(_rl.redemption_id.in_(ids))
        .group_by(_rl.redemption_id)
    )
    return lines, spent


def _customers(connection: Connection, window: Window) -> Any:
    return select(_o.customer_id).where(_in_window(connection, window)).distinct()


def _entries_query(connection: Connection, window: Window) -> Any:
    e, b = ledger_entries.c, buckets.c
    return (
        select(e.customer_id, e.bucket_id, e.order_id, e.points, e.effective_at, b.source)
        .join(buckets, buckets.c.bucket_id == e.bucket_id)
        .add_columns(b.available_at, b.expires_at)
        .where(
            e.program_id == window.program_id,
            e.customer_id.in_(_customers(connection, window)),
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
        .where(
            a.program_id == window.program_id,
            a.customer_id.in_(_customers(connection, window)),
        )
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
    row: Row[Any],
    lines: list[_Line],
    spent: dict[str, int],
    *,
    window: Window,
    wallet: _Wallet,
    history: tuple[QualifyingOrder, ...],
) -> RecordedOrder:
    return RecordedOrder(
        order_id=row.order_id,
        customer_id=row.customer_id,
        placed_at=row.created_at,
        cart=Cart(window.currency, tuple(cart_line(line) for line in lines)),
        payment_method=row.payment_method or "",
        points_spent=row.points or 0,
        spent_by_line={line_id: points for line_id, points in spent.items() if points},
        balances=wallet.balances_at(row.created_at, order_id=row.order_id),
        history=history,
        whole=bool(lines) and all(line.whole for line in lines),
    )
