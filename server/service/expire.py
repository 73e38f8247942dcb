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

from pricing.ledger import LedgerEntry
from server.metrics import Metrics
from server.service.ports import Store, UnitOfWork
from server.service.sql import SqlStore
from server.store.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpiryReport:
    accounts: int
    points: int


def expire_points(
    db: Database | Store, *, now: datetime, batch: int = 500, metrics: Metrics | None = None
) -> ExpiryReport:
    """Expire every account due at `now`, `batch` accounts per read, one transaction each."""
    store = SqlStore(db) if isinstance(db, Database) else db
    accounts = points = 0
    while True:
        due = store.read(lambda uow: uow.accounts.due_for_expiry(now=now, limit=batch))
        if not due:
            return ExpiryReport(accounts, points)
        for program_id, customer_id in due:
            expired = store.transact(
                functools.partial(
                    _expire_account, program_id=program_id, customer_id=customer_id, now=now
                )
            )
            if metrics is not None:
                metrics.expired.labels(program_id).inc(expired)
            points += expired
            accounts += 1


def _expire_account(uow: UnitOfWork, *, program_id: str, customer_id: str, now: datetime) -> int:
    # Lapsed holds give their points back and matured credits pay debt first: both
    # happened before the expiry that follows.
    uow.accounts.lock(program_id=program_id, customer_id=customer_id, now=now)
    expired = uow.accounts.expire(program_id=program_id, customer_id=customer_id, now=now)
    entries = [
        LedgerEntry("EXPIRY", -e.points, e.source, e.expires_at, e.bucket_id) for e in expired
    ]
    uow.ledger.append(
        entries, program_id=program_id, customer_id=customer_id, request_id=None, now=now
    )
    return sum(e.points for e in expired)
