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

from sqlalchemy import Connection, text

from server.store.hot import Hot
from server.store.snapshot import Snapshot, snapshot

_CLAIM_AND_LOCK = Hot(
    text(
        """
WITH claimed AS (
  INSERT INTO idempotency_keys (program_id, request_id, method, fingerprint, created_at)
  VALUES (CAST(:program_id AS VARCHAR), CAST(:request_id AS VARCHAR), CAST(:method AS VARCHAR),
    CAST(:fingerprint AS BYTEA), CAST(:now AS TIMESTAMPTZ))
  ON CONFLICT DO NOTHING
  RETURNING 1
)
INSERT INTO accounts AS a (program_id, customer_id, created_at)
SELECT CAST(:program_id AS VARCHAR), CAST(:customer_id AS VARCHAR), CAST(:now AS TIMESTAMPTZ)
FROM claimed
ON CONFLICT (program_id, customer_id) DO UPDATE SET version = a.version + 1
RETURNING a.debt_points
"""
    )
)


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
            "fingerprint": fingerprint, "customer_id": customer_id, "now": now,
        },
    )  # fmt: skip
    if not locked:
        return None
    ((debt,),) = locked
    seen = snapshot(
        connection, program_id=program_id, customer_id=customer_id, now=now, order_id=order_id
    )
    return Opened(program_id, customer_id, order_id, int(debt), seen)
