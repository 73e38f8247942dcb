"""An account in one statement: its debt, the buckets that matter at `now`, and two yes/no facts.

Every call on an account starts by reading these; one round trip instead of three (debt,
holds, buckets) plus the order check of an apply. The holds themselves are read only
when the account has one (rare: a hold lives while payment is in flight).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, exists, or_, select

from pricing.buckets import Bucket
from server.store.buckets import bucket_from_row
from server.store.schema import accounts, buckets, redemptions

_a, _b, _r = accounts.c, buckets.c, redemptions.c

_live_bucket = or_(
    and_(_b.remaining > 0, or_(_b.expires_at.is_(None), _b.expires_at > bindparam("now"))),
    _b.settled.is_(False),
    # written off by the expiry job, but not yet expired at `now` (a read at an earlier
    # `as_of` than the job ran at: SPEC §7)
    and_(_b.expired_points > 0, _b.expires_at > bindparam("now")),
)
_has_holds = exists().where(
    _r.program_id == bindparam("program_id"),
    _r.customer_id == bindparam("customer_id"),
    _r.state == "HELD",
)
# A lapse written down (by the job, or a call at a later `as_of`) after the read's `now`.
_lapsed_later = exists().where(
    _r.program_id == bindparam("program_id"),
    _r.customer_id == bindparam("customer_id"),
    _r.state == "EXPIRED",
    _r.hold_expires_at > bindparam("now"),
)
_order_taken = exists().where(
    _r.program_id == bindparam("program_id"), _r.order_id == bindparam("order_id")
)
# One row per live bucket (or one row of NULLs when there is none), each carrying the
# account's debt and the three facts; no row at all when the account does not exist yet.
_snapshot = (
    select(
        _a.debt_points,
        _has_holds.label("has_holds"),
        _order_taken.label("order_taken"),
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


@dataclass(frozen=True)
class Snapshot:
    debt: int
    buckets: list[Bucket]
    has_holds: bool
    order_taken: bool  # the order asked about already has a redemption
    lapsed_later: bool = False  # a hold's lapse is written down with a deadline after `now`


def snapshot(
    connection: Connection,
    *,
    program_id: str,
    customer_id: str,
    now: datetime,
    order_id: str = "",
) -> Snapshot:
    """Read the account as it stands; `order_id` ("" for none) is checked for a redemption."""
    rows = connection.execute(
        _snapshot,
        {"program_id": program_id, "customer_id": customer_id, "now": now, "order_id": order_id},
    ).all()
    if not rows:
        # No account row: nothing of it can exist (every row refers to its account) but the order.
        taken = (
            bool(order_id)
            and connection.execute(
                select(_order_taken), {"program_id": program_id, "order_id": order_id}
            ).scalar_one()
        )
        return Snapshot(0, [], False, bool(taken))
    first = rows[0]
    found = [bucket_from_row(row[4:]) for row in rows if row[4] is not None]
    return Snapshot(int(first[0]), found, bool(first[1]), bool(first[2]), bool(first[3]))
