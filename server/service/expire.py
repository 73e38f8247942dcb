"""The expiry job: EXPIRY entries for expired points, and lapses of holds (docs/rules.md §7, §8).

Balances never wait for it: every call decides expiry at its own `now`. The
job writes the ledger down. Each account is expired in its own transaction
under the account lock, so it is idempotent, safe to run twice at once, and
never races a spend: a spend takes only points spendable at its `now`, and
the job takes only points whose window has closed.
"""

import functools
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from server.metrics import Metrics
from server.service.account_state import locked_state
from server.store import buckets as bucket_store
from server.store.db import Database
from server.store.ledger import LedgerEntry, append
from server.store.redemptions import accounts_with_lapsed_holds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpiryReport:
    accounts: int
    points: int


def expire_points(
    db: Database, *, now: datetime, batch: int = 500, metrics: Metrics | None = None
) -> ExpiryReport:
    accounts = points = 0
    while True:
        due = db.read(lambda connection: _due(connection, now=now, limit=batch))
        if not due:
            return ExpiryReport(accounts, points)
        for program_id, customer_id in due:
            expired = db.transact(
                functools.partial(
                    _expire_account, program_id=program_id, customer_id=customer_id, now=now
                )
            )
            if metrics is not None:
                metrics.expired.labels(program_id).inc(expired)
            points += expired
            accounts += 1


def _due(connection: Connection, *, now: datetime, limit: int) -> list[tuple[str, str]]:
    """Accounts with expired points or lapsed holds still to write down."""
    due = bucket_store.accounts_with_expired_points(connection, now=now, limit=limit)
    lapsed = accounts_with_lapsed_holds(connection, now=now, limit=limit)
    return sorted(set(due) | set(lapsed))


def _expire_account(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> int:
    # Lapsed holds give their points back and matured credits pay debt first: both
    # happened before the expiry that follows.
    locked_state(connection, program_id=program_id, customer_id=customer_id, now=now)
    expired = bucket_store.expire_account(
        connection, program_id=program_id, customer_id=customer_id, now=now
    )
    append(
        connection,
        [
            LedgerEntry(
                kind="EXPIRY",
                points=-e.points,
                source=e.source,
                effective_at=e.expires_at,
                bucket_id=e.bucket_id,
            )
            for e in expired
        ],
        program_id=program_id,
        customer_id=customer_id,
        request_id=None,
        now=now,
    )
    return sum(e.points for e in expired)
