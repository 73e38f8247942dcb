"""Deciding an ApplyRedemption (docs/rules.md §4, §7): checks, allocation, buckets spent."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pricing.allocation import LineAllocation, allocate
from pricing.buckets import Bucket, Debit, balance_by_source, plan_spend
from pricing.cart import Cart
from pricing.eligibility import classify
from pricing.errors import AllOrNothing, ExceedsMaximum, PromoConflict
from pricing.program import Program, SelectionMode, Tier
from pricing.quote import has_promo_conflict, price_option


@dataclass(frozen=True)
class RedemptionPlan:
    points: int
    discount_minor: int
    maximum: int
    lines: tuple[LineAllocation, ...]  # every cart line, excluded ones with 0 points
    debits: tuple[Debit, ...]


def plan_redemption(
    program: Program,
    *,
    cart: Cart,
    tier: Tier,
    payment_method: str,
    points: int,
    buckets: Iterable[Bucket],
    now: datetime,
) -> RedemptionPlan:
    """Spend `points` on `cart`, recomputing the maximum: never trust an amount from outside.

    The currency is checked by the caller first (docs/rules.md §7 puts it before
    ORDER_ALREADY_REDEEMED); the rest follow in the order docs/rules.md §7 names.
    """
    if has_promo_conflict(program, cart):
        raise PromoConflict(cart.promo_code)
    pv = program.point_value_minor
    everything = list(buckets)
    balances = balance_by_source(everything, now)
    option = price_option(
        program, cart, tier=tier, payment_method=payment_method, balances=balances
    )
    if program.selection_mode is SelectionMode.ALL_OR_NOTHING and points != option.max_points:
        raise AllOrNothing(requested=points, maximum=option.max_points)
    if points > option.max_points:
        raise ExceedsMaximum(requested=points, maximum=option.max_points)
    eligibility = classify(program, cart)
    caps = option.caps
    assert caps is not None  # price_option always solves its caps
    spent = {a.line_id: a for a in allocate(points, eligibility.eligible, point_value_minor=pv)}
    lines = tuple(
        spent.get(line.line_id) or LineAllocation(line.line_id, line.quantity, 0, 0)
        for line in cart.lines
    )
    debits = plan_spend(everything, points=points, now=now, source_limits=caps.source_limits())
    return RedemptionPlan(points, points * pv, option.max_points, lines, tuple(debits))
