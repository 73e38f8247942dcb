"""A quote (docs/rules.md §4): how many points this cart may take, what the shopper then pays."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pricing.accrual import points_to_earn
from pricing.allocation import LineAllocation, allocate, line_capacity
from pricing.buckets import Bucket, balance_by_source
from pricing.caps import CapRates, Caps, Constraint, cap_rates
from pricing.cart import Cart
from pricing.eligibility import Eligibility, ExcludedLine, classify
from pricing.errors import CurrencyMismatch
from pricing.program import Program, PromoPolicy, SelectionMode, Tier


@dataclass(frozen=True)
class Option:
    """One way to pay for the cart: with the promo code kept, or with points."""

    keeps_promo: bool
    max_points: int
    max_discount_minor: int
    eligible_base_minor: int
    payable_minor: int
    binding: Constraint
    selection_mode: SelectionMode
    allocations: tuple[LineAllocation, ...]
    excluded: tuple[ExcludedLine, ...]
    points_to_earn: int
    # The limits the maximum was solved from (absent when the option spends no points by
    # policy): what an explanation quotes, never recomputed.
    rates: CapRates | None = None
    caps: Caps | None = None


@dataclass(frozen=True)
class Quote:
    tier_id: str
    spendable_points: int
    options: tuple[Option, ...]
    recommended: int  # index into options


def check_currency(program: Program, cart: Cart) -> None:
    if cart.currency != program.currency:
        raise CurrencyMismatch(expected=program.currency, got=cart.currency)


def has_promo_conflict(program: Program, cart: Cart) -> bool:
    """Under EXCLUSIVE, a promo code and points cannot share an order."""
    return program.promo_policy is PromoPolicy.EXCLUSIVE and bool(cart.promo_code)


def price_option(
    program: Program,
    cart: Cart,
    *,
    tier: Tier,
    payment_method: str,
    balances: Mapping[str, int],
) -> Option:
    """The maximum for `cart` as it is, its allocation, and what the shopper pays."""
    pv = program.point_value_minor
    eligibility = classify(program, cart)
    maximum, binding, rates, caps = solve_limits(
        program, eligibility, tier=tier, payment_method=payment_method, balances=balances
    )
    allocations = allocate(maximum, eligibility.eligible, point_value_minor=pv)
    spent = {a.line_id: a.points for a in allocations}
    return Option(
        keeps_promo=bool(cart.promo_code),
        max_points=maximum,
        max_discount_minor=maximum * pv,
        eligible_base_minor=eligibility.base_minor,
        payable_minor=cart.total_minor - maximum * pv,
        binding=binding,
        selection_mode=program.selection_mode,
        allocations=allocations,
        excluded=eligibility.excluded,
        points_to_earn=points_to_earn(cart, spent_by_line=spent, tier=tier, point_value_minor=pv),
        rates=rates,
        caps=caps,
    )


def solve_maximum(
    program: Program,
    eligibility: Eligibility,
    *,
    tier: Tier,
    payment_method: str,
    balances: Mapping[str, int],
) -> tuple[int, Constraint]:
    """The most the eligible lines may take, and the constraint that binds (docs/rules.md §4)."""
    maximum, binding, _, _ = solve_limits(
        program, eligibility, tier=tier, payment_method=payment_method, balances=balances
    )
    return maximum, binding


def solve_limits(
    program: Program,
    eligibility: Eligibility,
    *,
    tier: Tier,
    payment_method: str,
    balances: Mapping[str, int],
) -> tuple[int, Constraint, CapRates, Caps]:
    """solve_maximum, with the rates and caps it solved (what an explanation quotes)."""
    rates = cap_rates(program, tier=tier, payment_method=payment_method)
    caps = build_caps(program, eligibility, rates=rates, balances=balances)
    if eligibility.base_minor == 0:
        return 0, Constraint.NO_ELIGIBLE_LINES, rates, caps
    maximum, binding = caps.solve()
    return maximum, binding, rates, caps


def build_caps(
    program: Program,
    eligibility: Eligibility,
    *,
    rates: CapRates,
    balances: Mapping[str, int],
) -> Caps:
    """Every limit on the order's points, from its eligible lines and the shopper's balances."""
    pv = program.point_value_minor
    return Caps.build(
        rates,
        eligible_base_minor=eligibility.base_minor,
        point_value_minor=pv,
        balances=balances,
        line_granularity=sum(
            line_capacity(line, point_value_minor=pv) for line in eligibility.eligible
        ),
    )


def keep_promo_option(program: Program, cart: Cart, *, tier: Tier) -> Option:
    """Under EXCLUSIVE: keep the promo code and spend no points."""
    pv = program.point_value_minor
    eligibility = classify(program, cart)
    return Option(
        keeps_promo=True,
        max_points=0,
        max_discount_minor=0,
        eligible_base_minor=eligibility.base_minor,
        payable_minor=cart.total_minor,
        binding=Constraint.PROMO_CONFLICT,
        selection_mode=program.selection_mode,
        allocations=allocate(0, eligibility.eligible, point_value_minor=pv),
        excluded=eligibility.excluded,
        points_to_earn=points_to_earn(cart, spent_by_line={}, tier=tier, point_value_minor=pv),
    )


def quote(
    program: Program,
    *,
    cart: Cart,
    tier: Tier,
    payment_method: str,
    buckets: Iterable[Bucket],
    now: datetime,
) -> Quote:
    """Every option for `cart` at `now`, and which one the shopper should take."""
    check_currency(program, cart)
    balances = balance_by_source(buckets, now)
    spendable_points = sum(balances.values())
    if not has_promo_conflict(program, cart):
        option = price_option(
            program, cart, tier=tier, payment_method=payment_method, balances=balances
        )
        return Quote(tier.id, spendable_points, (option,), 0)
    keep = keep_promo_option(program, cart, tier=tier)
    drop = price_option(
        program, cart.without_promo(), tier=tier, payment_method=payment_method, balances=balances
    )
    # The cheaper option for the shopper; on a tie, keep the promo (docs/rules.md §4).
    recommended = 1 if drop.payable_minor < keep.payable_minor else 0
    return Quote(tier.id, spendable_points, (keep, drop), recommended)
