"""Buckets: loading them as domain values and moving points in and out."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from pricing.buckets import Bucket, Debit, Expired, Settlement
from server.store.hot import Hot, const
from server.store.schema import buckets

_columns = (
    buckets.c.bucket_id,
    buckets.c.source,
    buckets.c.remaining,
    buckets.c.available_at,
    buckets.c.expires_at,
    buckets.c.settled,
    buckets.c.expired_points,
)


def bucket_from_row(row: tuple[int, str, int, datetime, datetime | None, bool, int]) -> Bucket:
    bucket_id, source, remaining, available_at, expires_at, settled, expired_points = row
    return Bucket(
        bucket_id, source, remaining, available_at, expires_at, seq=bucket_id, settled=settled,
        expired_points=expired_points,
    )  # fmt: skip


# Built once: the hot path only binds values (no construct, no cache key built per call).
_account_buckets = Hot(
    select(*_columns).where(
        buckets.c.program_id == bindparam("program_id"),
        buckets.c.customer_id == bindparam("customer_id"),
        or_(
            and_(
                buckets.c.remaining > const(0),
                or_(buckets.c.expires_at.is_(None), buckets.c.expires_at > bindparam("now")),
            ),
            buckets.c.settled.is_(False),
        ),
    )
)
_by_id = select(*_columns).where(buckets.c.bucket_id.in_(bindparam("ids", expanding=True)))


def account_buckets(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> list[Bucket]:
    """The buckets that matter at `now`: points not yet expired, and credits not yet settled."""
    rows = _account_buckets.rows(
        connection, {"program_id": program_id, "customer_id": customer_id, "now": now}
    )
    return [bucket_from_row(row) for row in rows]  # type: ignore[arg-type]


def buckets_by_id(connection: Connection, bucket_ids: Iterable[int]) -> dict[int, Bucket]:
    rows = connection.execute(_by_id, {"ids": list(bucket_ids)})
    return {bucket.bucket_id: bucket for bucket in (bucket_from_row(row) for row in rows)}


def add_bucket(
    connection: Connection,
    *,
    program_id: str,
    customer_id: str,
    source: str,
    granted: int,
    remaining: int,
    available_at: datetime,
    expires_at: datetime | None,
    origin: str,
    order_id: str | None,
    now: datetime,
    settled: bool = True,
) -> int:
    statement = (
        insert(buckets)
        .values(
            program_id=program_id,
            customer_id=customer_id,
            source=source,
            granted=granted,
            remaining=remaining,
            available_at=available_at,
            expires_at=expires_at,
            origin=origin,
            order_id=order_id,
            created_at=now,
            settled=settled,
        )
        .returning(buckets.c.bucket_id)
    )
    return int(connection.execute(statement).scalar_one())


_move = Hot(
    update(buckets)
    .where(buckets.c.bucket_id == bindparam("b_id"))
    .values(remaining=buckets.c.remaining + bindparam("delta"))
)


def take(connection: Connection, debits: Iterable[Debit]) -> None:
    """Take points out of buckets; the schema's CHECK refuses to go below zero."""
    _move.many(connection, [{"b_id": d.bucket_id, "delta": -d.points} for d in debits])


def give_back(connection: Connection, credits: Iterable[Debit]) -> None:
    """Put points back into the buckets they came from."""
    _move.many(connection, [{"b_id": c.bucket_id, "delta": c.points} for c in credits])


def write_settlement(connection: Connection, settlement: Settlement) -> None:
    """Matured credits paid the debt: take what they paid, mark them settled."""
    take(connection, settlement.payments)
    if settlement.settled:
        connection.execute(
            update(buckets).where(buckets.c.bucket_id.in_(settlement.settled)).values(settled=True)
        )


_expire_more = (
    update(buckets)
    .where(buckets.c.bucket_id == bindparam("b_id"))
    .values(expired_points=buckets.c.expired_points + bindparam("points"))
)


def record_expired(connection: Connection, amounts: Iterable[Debit]) -> None:
    """Points that came back into an already expired bucket: they stay expired."""
    params = [{"b_id": a.bucket_id, "points": a.points} for a in amounts]
    if params:
        connection.execute(_expire_more, params)


def written_off(connection: Connection, bucket_id: int) -> int:
    """Points of the bucket written down as EXPIRY that no clawback has taken since."""
    found = connection.execute(
        select(buckets.c.expired_points).where(buckets.c.bucket_id == bucket_id)
    ).scalar_one()
    return int(found)


def take_written_off(connection: Connection, bucket_id: int, points: int) -> None:
    """A clawback took back expired points of the accrual's bucket (no ledger entry: the
    EXPIRY entry already took them off)."""
    if points:
        connection.execute(
            update(buckets)
            .where(buckets.c.bucket_id == bucket_id)
            .values(expired_points=buckets.c.expired_points - points)
        )


def expire_account(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> list[Expired]:
    """Write off every point of the account whose bucket expired at or before `now`."""
    rows = connection.execute(
        select(buckets.c.bucket_id, buckets.c.source, buckets.c.remaining, buckets.c.expires_at)
        .where(
            buckets.c.program_id == program_id,
            buckets.c.customer_id == customer_id,
            buckets.c.remaining > 0,
            buckets.c.expires_at <= now,
        )
        .order_by(buckets.c.bucket_id)
    ).all()
    expired = [Expired(r.bucket_id, r.source, r.remaining, r.expires_at) for r in rows]
    if expired:
        connection.execute(
            update(buckets)
            .where(buckets.c.bucket_id == bindparam("b_id"))
            .values(
                expired_points=buckets.c.expired_points + bindparam("points"),
                remaining=buckets.c.remaining - bindparam("points"),
            ),
            [{"b_id": e.bucket_id, "points": e.points} for e in expired],
        )
    return expired


def accounts_with_expired_points(
    connection: Connection, *, now: datetime, limit: int
) -> list[tuple[str, str]]:
    """(program, customer) pairs holding points that expired at or before `now`."""
    rows = connection.execute(
        select(buckets.c.program_id, buckets.c.customer_id)
        .where(buckets.c.expires_at <= now, buckets.c.remaining > 0)
        .group_by(buckets.c.program_id, buckets.c.customer_id)
        .limit(limit)
    )
    return [(r.program_id, r.customer_id) for r in rows]
