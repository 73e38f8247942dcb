"""Buckets: loading them as domain values and moving points in and out."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from pricing.buckets import Bucket, Debit
from server.store.schema import buckets

_columns = (
    buckets.c.bucket_id,
    buckets.c.source,
    buckets.c.remaining,
    buckets.c.available_at,
    buckets.c.expires_at,
)


def _bucket(row: tuple[int, str, int, datetime, datetime | None]) -> Bucket:
    bucket_id, source, remaining, available_at, expires_at = row
    return Bucket(bucket_id, source, remaining, available_at, expires_at, seq=bucket_id)


def live_buckets(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> list[Bucket]:
    """Buckets with points that have not expired at `now`: spendable and pending ones."""
    rows = connection.execute(
        select(*_columns).where(
            buckets.c.program_id == program_id,
            buckets.c.customer_id == customer_id,
            buckets.c.remaining > 0,
            or_(buckets.c.expires_at.is_(None), buckets.c.expires_at > now),
        )
    )
    return [_bucket(row._tuple()) for row in rows]


def spendable_buckets(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> list[Bucket]:
    """Buckets spendable at `now` (`available_at ≤ now < expires_at`) with points left."""
    return [
        b
        for b in live_buckets(connection, program_id=program_id, customer_id=customer_id, now=now)
        if b.available_at <= now
    ]


def total_remaining(connection: Connection, *, program_id: str, customer_id: str) -> int:
    """Points left in all of a customer's buckets, whatever their window (summed in Python:
    SQLite's SUM raises on int64 overflow)."""
    rows = connection.execute(
        select(buckets.c.remaining).where(
            buckets.c.program_id == program_id, buckets.c.customer_id == customer_id
        )
    )
    return sum(remaining for (remaining,) in rows)


def buckets_by_id(connection: Connection, bucket_ids: Iterable[int]) -> dict[int, Bucket]:
    rows = connection.execute(select(*_columns).where(buckets.c.bucket_id.in_(list(bucket_ids))))
    return {bucket.bucket_id: bucket for bucket in (_bucket(row._tuple()) for row in rows)}


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
        )
        .returning(buckets.c.bucket_id)
    )
    return int(connection.execute(statement).scalar_one())


_move = (
    update(buckets)
    .where(buckets.c.bucket_id == bindparam("b_id"))
    .values(remaining=buckets.c.remaining + bindparam("delta"))
)


def take(connection: Connection, debits: Iterable[Debit]) -> None:
    """Take points out of buckets; the schema's CHECK refuses to go below zero."""
    params = [{"b_id": d.bucket_id, "delta": -d.points} for d in debits]
    if params:
        connection.execute(_move, params)


def give_back(connection: Connection, credits: Iterable[Debit]) -> None:
    """Put points back into the buckets they came from."""
    params = [{"b_id": c.bucket_id, "delta": c.points} for c in credits]
    if params:
        connection.execute(_move, params)
