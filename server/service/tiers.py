"""The tier in force for a customer at an instant, from the orders that matured before it."""

from datetime import datetime, timedelta

from sqlalchemy import Connection

from pricing.program import Program, Tier
from pricing.tiers import TierStatus, tier_status
from server.store.accruals import qualifying_orders


def current_tier(
    connection: Connection, program: Program, *, customer_id: str, now: datetime
) -> TierStatus:
    """Matured accruals of the window count (pricing/tiers.py decides the exact local days)."""
    # Two spare days around the window cover any time-zone offset; pricing filters exactly.
    since = now - timedelta(days=program.tier_window_days + 2)
    history = qualifying_orders(
        connection, program_id=program.id, customer_id=customer_id, since=since, until=now
    )
    return tier_status(program, history, now=now)


def pricing_tier(
    connection: Connection, program: Program, *, customer_id: str, now: datetime
) -> Tier:
    """The tier that prices a call; with a single tier there is nothing to look up."""
    if not needs_tier_lookup(program):
        return program.tiers[0]
    return current_tier(connection, program, customer_id=customer_id, now=now).tier


def needs_tier_lookup(program: Program) -> bool:
    """Whether a call's tier is read from the customer's history (several tiers) or not."""
    return len(program.tiers) > 1
