"""Tiers (docs/rules.md §5): from matured orders over a rolling window of the program's days."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from pricing.program import Program, Tier


@dataclass(frozen=True)
class QualifyingOrder:
    """An order's accrual: when it matured and the amount it counts for (after returns)."""

    matured_at: datetime
    amount_minor: int


@dataclass(frozen=True)
class TierStatus:
    tier: Tier
    spend_minor: int
    orders: int
    next_tier: Tier | None  # None at the top tier
    missing_spend_minor: int
    missing_orders: int


def counts_on(program: Program, order: QualifyingOrder, today: date) -> bool:
    """An order maturing on day D counts on days D+1 through D+window (Stomatorg FAQ)."""
    matured_on = order.matured_at.astimezone(program.zone).date()
    return order.amount_minor > 0 and 1 <= (today - matured_on).days <= program.tier_window_days


def tier_status(
    program: Program, orders: Iterable[QualifyingOrder], *, now: datetime
) -> TierStatus:
    """The tier in force at `now`, what qualifies for it, and what the next tier still needs."""
    today = now.astimezone(program.zone).date()
    counted = [order for order in orders if counts_on(program, order, today)]
    spend = sum(order.amount_minor for order in counted)
    count = len(counted)
    reached = [t for t in program.tiers if spend >= t.min_spend_minor and count >= t.min_orders]
    tier = reached[-1] if reached else program.tiers[0]
    above = program.tiers[program.tiers.index(tier) + 1 :]
    next_tier = above[0] if above else None
    return TierStatus(
        tier=tier,
        spend_minor=spend,
        orders=count,
        next_tier=next_tier,
        missing_spend_minor=max(next_tier.min_spend_minor - spend, 0) if next_tier else 0,
        missing_orders=max(next_tier.min_orders - count, 0) if next_tier else 0,
    )
