"""The ledger: an append-only list of every change to what a customer owns (docs/rules.md §7)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, func, insert, or_, select

from pricing.ledger import LedgerEntry
from server.store.hot import Hot
from server.store.schema import ledger_entries

_ENTRY_COLUMNS = (
    "program_id", "customer_id", "kind", "points", "source", "bucket_id", "order_id",
    "request_id", "reason", "effective_at", "recorded_at",
)  # fmt: skip
_insert = Hot(insert(ledger_entries), keys=_ENTRY_COLUMNS)


def append(
    connection: Connection,
    entries: Sequence[LedgerEntry],
    *,
    program_id: str,
    customer_id: str,
    request_id: str | None,
    now: datetime,
) -> None:
    rows = [
        {
            "program_id": program_id,
            "customer_id": customer_id,
            "kind": e.kind,
            "points": e.points,
            "source": e.source,
            "bucket_id": e.bucket_id,
            "order_id": e.order_id,
            "request_id": request_id,
            "reason": e.reason,
            "effective_at": e.effective_at,
            "recorded_at": now,
        }
        for e in entries
        if e.points
    ]
    _insert.many(connection, rows)


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last entry's (effective_at, entry_id)."""

    effective_at: datetime
    entry_id: int


def highest_entry_id(connection: Connection, *, program_id: str, customer_id: str) -> int:
    """The account's newest entry id (0 for none): what a walk over its pages covers."""
    c = ledger_entries.c
    query = select(func.max(c.entry_id)).where(
        c.program_id == program_id, c.customer_id == customer_id
    )
    return int(connection.execute(query).scalar_one() or 0)


def page(
    connection: Connection,
    *,
    program_id: str,
    customer_id: str,
    up_to: datetime,
    highest_entry_id: int,
    after: Cursor | None,
    limit: int,
) -> list[LedgerEntry]:
    """Entries effective at or before `up_to` with ids up to `highest_entry_id`, oldest
    first (ties by entry id), strictly after `after`."""
    c = ledger_entries.c
    query = select(
        c.entry_id,
        c.kind,
        c.points,
        c.source,
        c.bucket_id,
        c.order_id,
        c.reason,
        c.effective_at,
        c.recorded_at,
    ).where(
        c.program_id == program_id,
        c.customer_id == customer_id,
        c.effective_at <= up_to,
        c.entry_id <= highest_entry_id,
    )
    if after is not None:
        query = query.where(
            or_(
                c.effective_at > after.effective_at,
                and_(c.effective_at == after.effective_at, c.entry_id > after.entry_id),
            )
        )
    query = query.order_by(c.effective_at, c.entry_id).limit(limit)
    return [
        LedgerEntry(
            kind=row.kind,
            points=row.points,
            source=row.source,
            effective_at=row.effective_at,
            bucket_id=row.bucket_id,
            order_id=row.order_id,
            reason=row.reason,
            entry_id=row.entry_id,
            recorded_at=row.recorded_at,
        )
        for row in connection.execute(query)
    ]
