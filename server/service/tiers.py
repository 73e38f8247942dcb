"""The tier in force for a customer at an instant."""

from datetime import datetime

from sqlalchemy import Connection

from pricing.program import Program
from pricing.tiers import QualifyingOrder, TierStatus, tier_status


def current_tier(
    connection: Connection, program: Program, *, customer_id: str, now: datetime
) -> TierStatus:
    """Tiers count matured order accruals; orders are recorded by AccrueOrder."""
    history: list[QualifyingOrder] = []  # AccrueOrder's accruals feed this (earning issue)
    return tier_status(program, history, now=now)
