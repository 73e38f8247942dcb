"""Ledger entries (docs/rules.md §7): every change to what a customer owns, and when it counts."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LedgerEntry:
    kind: str  # GRANT, ACCRUAL, REDEMPTION, HOLD, RELEASE, REVERSAL, CLAWBACK, DEBT, EXPIRY
    points: int  # signed: + credits, − debits
    source: str
    effective_at: datetime
    bucket_id: int | None = None
    order_id: str | None = None
    reason: str = ""
    entry_id: int = 0
    recorded_at: datetime | None = None
