"""An account in one statement: its debt, the buckets that matter at `now`, and two yes/no facts.

Every call on an account starts by reading these; one round trip instead of three (debt,
holds, buckets) plus what an apply needs of its order (its customer, its attempts, whether
one is live). The holds themselves are read only when the account has one (rare: a hold
lives while payment is in flight).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, exists, func, or_, select, text

from pricing.buckets import Bucket
from pricing.order import OrderHead
from server.store.buckets import bucket_from_row
from server.store.hot import Hot, const
from server.store.schema import LIVE_REDEMPTION, accounts, buckets, orders, redemptions

_a, _b, _r, _o = accounts.c, buckets.c, redemptions.c, orders.c

_live_bucket = or_(
    and_(_b.remaining > const(0), or_(_b.expires_at.is_(None), _b.expires_at > bindparam("now"))),
    _b.settled.is_(False),
    # written off by the expiry job, but not yet expired at `now` (a read at an earlier
    # `as_of` than the job ran at: docs/rules.md §7)
    and_(_b.expired_points > const(0), _b.expires_at > bindparam("now")),
)
_has_holds = exists().where(
    _r.program_id == bindparam("program_id"),
    _r.customer_id == bindparam("customer_id"),
    _r.state == const("HELD"),
)
# A lapse written down (by the job, or a call at a later `as_of`) after the read's `now`.
_lapsed_later = exists().where(
    _r.program_id == bindparam("program_id"),
    _r.customer_id == bindparam("customer_id"),
    _r.state == const("EXPIRED"),
    _r.hold_expires_at > bindparam("now"),
)
_of_order = and_(_r.program_id == bindparam("program_id"), _r.order_id == bindparam("order_id"))
# The order asked about: its customer (NULL: no such order), its attempts, whether one is live.
_order_customer = (
    select(_o.customer_id)
    .where(_o.program_id == bindparam("program_id"), _o.order_id == bindparam("order_id"))
    .scalar_subquery()
)
_order_attempts = select(func.count()).select_from(redemptions).where(_of_order).scalar_subquery()
_order_live = exists().where(_of_order, text(LIVE_REDEMPTION))
_order_facts = (
    _order_customer.label("order_customer"),
    _order_attempts.label("order_attempts"),
    _order_live.label("order_live"),
)
# One row per live bucket (or one row of NULLs when there is none), each carrying the
# account's debt and the three facts; no row at all when the account does not exist yet.
_snapshot = Hot(
    select(
        _a.debt_points,
        _has_holds.label("has_holds"),
        *_order_facts,
        _lapsed_later.label("lapsed_later"),
        _b.bucket_id,
        _b.source,
        _b.remaining,
        _b.available_at,
        _b.expires_at,
        _b.settled,
        _b.expired_points,
    )
    .select_from(
        accounts.outerjoin(
            buckets,
            and_(_b.program_id == _a.program_id, _b.customer_id == _a.customer_id, _live_bucket),
        )
    )
    .where(_a.program_id == bindparam("program_id"), _a.customer_id == bindparam("customer_id"))
)
_order_only = Hot(select(*_order_facts))


@dataclass(frozen=True)
class Snapshot:
    debt: int
    buckets: list[Bucket]
    has_holds: bool
    order: OrderHead | None  # the order asked about, when it is recorded
    lapsed_later: bool = False  # a hold's lapse is written down with a deadline after `now`


def snapshot(
    connection: Connection,
    *,
    program_id: str,
    customer_id: str,
    now: datetime,
    order_id: str = "",
) -> Snapshot:
    """Read the account as it stands, and the order `order_id` ("" for none) if recorded."""
    rows = _snapshot.rows(
        connection,
        {"program_id": program_id, "customer_id": customer_id, "now": now, "order_id": order_id},
    )
    if not rows:
        # No account row: nothing of it can exist (every row refers to its account) but the order.
        order = None
        if order_id:
            (facts,) = _order_only.rows(
                connection, {"program_id": program_id, "order_id": order_id}
            )
            order = _head(order_id, *facts)
        return Snapshot(0, [], False, order)
    first = rows[0]
    found = [bucket_from_row(row[6:]) for row in rows if row[6] is not None]  # type: ignore[arg-type]
    order = _head(order_id, *first[2:5])
    return Snapshot(int(first[0]), found, bool(first[1]), order, bool(first[5]))


def _head(order_id: str, customer_id: str | None, attempts: int, live: bool) -> OrderHead | None:
    if customer_id is None:
        return None
    return OrderHead(order_id, customer_id, bool(live), int(attempts))
