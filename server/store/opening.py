"""A mutation's first round trip: claim its request id, lock its account, read the account.

Three statements that each waited for the one before: sent together on PostgreSQL (one
round trip, psycopg's pipeline mode; the server still runs them in order, so a concurrent
claim of the same request id waits before the lock as before). The lock creates the
account when it is missing, so the snapshot always finds it.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from server.store.accounts import LOCK
from server.store.hot import together
from server.store.idempotency import CLAIM
from server.store.snapshot import SNAPSHOT, Snapshot, from_rows, snapshot_params


@dataclass(frozen=True)
class Opened:
    """The account locked and read for (program, customer, order) by `claim_and_lock`."""

    program_id: str
    customer_id: str
    order_id: str
    debt: int
    seen: Snapshot


def claim_and_lock(
    connection: Connection,
    *,
    program_id: str,
    request_id: str,
    method: str,
    fingerprint: bytes,
    customer_id: str,
    order_id: str,
    now: datetime,
) -> Opened | None:
    """The account under its lock with the request id claimed; None when the id was claimed
    before (roll back: the lock taken meanwhile is not this request's to keep)."""
    claim = {
        "program_id": program_id, "request_id": request_id, "method": method,
        "fingerprint": fingerprint, "created_at": now,
    }  # fmt: skip
    lock = {"program_id": program_id, "customer_id": customer_id, "created_at": now}
    read = snapshot_params(program_id, customer_id, now, order_id)
    claimed, locked, rows = together(connection, (CLAIM, claim), (LOCK, lock), (SNAPSHOT, read))
    if not claimed:
        return None
    ((debt,),) = locked
    return Opened(program_id, customer_id, order_id, int(debt), from_rows(connection, rows, read))
