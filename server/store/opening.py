"""A mutation's opening on PostgreSQL: claim its request id and lock its account in one
statement, then read the account.

The lock is taken only when the claim succeeded (a replay changes nothing), and after it: a
concurrent claim of the same request id waits before the lock, as when they were two
statements. The read stays a statement of its own: a statement reads the data as they were
when it began, before the lock it may have waited for, and the account must be read as the
transaction that held the lock left it. The lock creates the account when it is missing.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from server.store.accounts import locking
from server.store.hot import Hot
from server.store.idempotency import claiming
from server.store.snapshot import Snapshot, snapshot

# The claim as a CTE, the account's lock-or-create upsert on its row: one statement.
_CLAIM_AND_LOCK = Hot(locking(postgresql.insert, after=claiming(postgresql.insert).cte("claimed")))


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
    """The account under its lock, read, with the request id claimed; None (nothing locked)
    when the id was claimed before."""
    locked = _CLAIM_AND_LOCK.rows(
        connection,
        {
            "program_id": program_id, "request_id": request_id, "method": method,
            "fingerprint": fingerprint, "customer_id": customer_id, "created_at": now,
        },
    )  # fmt: skip
    if not locked:
        return None
    ((debt,),) = locked
    seen = snapshot(
        connection, program_id=program_id, customer_id=customer_id, now=now, order_id=order_id
    )
    return Opened(program_id, customer_id, order_id, int(debt), seen)
