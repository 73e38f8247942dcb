"""Hypothesis properties of the pricing core (issue #2 acceptance).

Every expected value here is computed independently from the rules of docs/rules.md §2–§6
(the reference programs' rates are written out from the docs/rules.md §5 table), never
with the code under test.
"""

from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from fractions import Fraction
from math import ceil, floor
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.allocation import allocate
from pricing.buckets import (
    Bucket,
    Debit,
    DebitRecord,
    first_expiring_first,
    plan_clawback,
    plan_restore,
    plan_spend,
)
from pricing.caps import Constraint
from pricing.cart import Cart, CartLine, LineKind
from pricing.errors import AllOrNothing, ExceedsMaximum, ExceedsRemaining
from pricing.money import split_largest_remainder
from pricing.program import Program, load_program
from pricing.quote import quote
from pricing.redemption import plan_redemption
from pricing.reversal import ReturnedLine, UnitsLine, plan_line_returns, units_to_return

PROGRAMS = Path(__file__).resolve().parents[3] / "programs"
STOMATORG = load_program(PROGRAMS / "stomatorg.toml")
DENCO = load_program(PROGRAMS / "denco.toml")

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=MSK)

PROPS = settings(max_examples=250, deadline=None)


# --- allocation ----------------------------------------------------------------------------


@st.composite
def split_cases(draw: st.DrawFn) -> tuple[int, list[int], list[int]]:
    """Weights, capacities (room only where there is weight) and a total that fits."""
    weights = draw(st.lists(st.integers(0, 10_000), max_size=10))
    capacities = [draw(st.integers(0, 60)) if w > 0 else 0 for w in weights]
    total = draw(st.integers(0, sum(capacities)))
    return total, weights, capacities


@PROPS
@given(split_cases())
def test_split_with_capacities_sums_to_total_within_capacity(
    case: tuple[int, list[int], list[int]],
) -> None:
    total, weights, capacities = case
    parts = split_largest_remainder(total, weights, capacities)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    for part, weight, capacity in zip(parts, weights, capacities, strict=True):
        assert 0 <= part <= capacity
        if weight == 0:
            assert part == 0


@PROPS
@given(
    st.integers(0, 100_000),
    st.lists(st.integers(0, 10_000), min_size=1, max_size=10).filter(lambda ws: sum(ws) > 0),
)
def test_split_without_capacities_is_within_one_of_the_exact_quota(
    total: int, weights: list[int]
) -> None:
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        quota = Fraction(total * weight, sum(weights))
        assert floor(quota) <= part <= ceil(quota)


@st.composite
def goods_lines(draw: st.DrawFn, *, max_lines: int = 8) -> list[CartLine]:
    lines = []
    for index in range(draw(st.integers(1, max_lines))):
        quantity = draw(st.integers(1, 5))
        unit = draw(st.integers(0, 20_000))
        gross = quantity * unit
        discount = draw(st.integers(0, gross))
        lines.append(CartLine(f"l{index}", quantity, unit, discount_minor=discount))
    return lines


@PROPS
@given(goods_lines(), st.sampled_from([1, 30, 100]), st.data())
def test_allocate_sums_to_total_within_line_capacity(
    lines: list[CartLine], point_value: int, data: st.DataObject
) -> None:
    capacities = [line.net_minor // point_value for line in lines]
    points = data.draw(st.integers(0, sum(capacities)), label="points")
    allocations = allocate(points, lines, point_value_minor=point_value)
    assert sum(a.points for a in allocations) == points
    for allocation, line, capacity in zip(allocations, lines, capacities, strict=True):
        assert allocation.line_id == line.line_id
        assert allocation.quantity == line.quantity
        assert 0 <= allocation.points <= capacity
        assert allocation.discount_minor == allocation.points * point_value


# --- the maximum ---------------------------------------------------------------------------

# docs/rules.md §5, written out: redeem caps in basis points, per tier and per payment method.
STOMATORG_TIER_BP = {"base": 300, "regular": 500, "partner": 1000, "vip": 1500}
DENCO_CATEGORIES = {
    "gift_certificates",
    "air_tickets",
    "rail_tickets",
    "digital_books",
    "digital_magazines",
    "audiobooks",
    "playstation_cards",
}
DENCO_BRANDS = {"iqos", "reima", "lassie"}


def rules_for(program_id: str, tier_id: str, method: str) -> tuple[int, dict[str, int | None]]:
    """The total cap and each source's cap, in basis points, straight from docs/rules.md §5."""
    if program_id == "stomatorg":
        return STOMATORG_TIER_BP[tier_id], {"loyalty": None, "action": None, "promo": None}
    if method == "denco_card":
        return 9999, {"loyalty": 9999, "promo": 5000}
    return 5000, {"loyalty": None, "promo": 5000}


def eligible_by_rules(program_id: str, line: CartLine) -> bool:
    if program_id == "stomatorg":
        no_points = any(tag.lower() == "no_points" for tag in line.tags)
        return line.kind is LineKind.GOODS and not no_points
    return line.category.lower() not in DENCO_CATEGORIES and line.brand.lower() not in DENCO_BRANDS


def points_of(base: int, bp: int, point_value: int) -> int:
    """floor(base × bp / 10000) minor in whole points, rounded down."""
    return floor(Fraction(base * bp, 10_000 * point_value))


def brute_maximum(
    *,
    total_cap: int | None,
    granularity: int | None,
    rooms: dict[str, tuple[int | None, int | None]],
) -> int:
    """The largest T that some split over sources reaches within every bound.

    Every split x_s ≤ min(cap_s, balance_s) is enumerated as a bitset of reachable sums;
    a missing bound (None) is one that was removed.
    """
    limit = (
        min(b for b in (total_cap, granularity) if b is not None)
        if (total_cap is not None or granularity is not None)
        else None
    )
    reachable = 1  # bit t set: a total of t points is reachable
    ceiling = 0
    for cap, balance in rooms.values():
        finite = [b for b in (cap, balance) if b is not None]
        if not finite:
            assert limit is not None
            return limit  # an unbounded source: any total up to the limit
        room = min(finite)
        widened = 0
        for x in range(room + 1):
            widened |= reachable << x
        reachable = widened
        ceiling += room
    best = ceiling if limit is None else min(ceiling, limit)
    while not reachable >> best & 1:
        best -= 1
    return best


@st.composite
def wallets(draw: st.DrawFn, sources: list[str]) -> list[Bucket]:
    buckets = []
    for index in range(draw(st.integers(0, 6))):
        available = NOW + timedelta(days=draw(st.integers(-10, 3)))
        expiry_days = draw(st.none() | st.integers(-3, 30))
        expires = None if expiry_days is None else NOW + timedelta(days=expiry_days)
        if expires is not None and expires <= available:
            expires = available + timedelta(days=1)
        buckets.append(
            Bucket(
                bucket_id=index,
                source=draw(st.sampled_from(sources)),
                remaining=draw(st.integers(0, 30) | st.integers(0, 400)),
                available_at=available,
                expires_at=expires,
                seq=index,
            )
        )
    return buckets


@st.composite
def quote_cases(draw: st.DrawFn) -> tuple[Program, str, str, Cart, list[Bucket]]:
    program = draw(st.sampled_from([STOMATORG, DENCO]))
    if draw(st.booleans()):
        program = replace(program, point_value_minor=draw(st.sampled_from([30, 37])))
    tier_id = draw(st.sampled_from([t.id for t in program.tiers]))
    method = draw(st.sampled_from(["", "denco_card", "denco_card", "cash"]))
    stack = program.id == "denco"
    lines = []
    for index in range(draw(st.integers(1, 6))):
        quantity = draw(st.integers(1, 4))
        unit = draw(st.integers(1, 300) | st.integers(0, 15_000))  # small: granularity
        gross = quantity * unit
        discount = draw(st.just(0) | st.integers(0, gross))
        promo = draw(st.integers(0, gross - discount)) if stack else 0
        lines.append(
            CartLine(
                f"l{index}",
                quantity,
                unit,
                category=draw(
                    st.sampled_from(["", "", "", "toys", "Gift_Certificates", "AUDIOBOOKS"])
                ),
                brand=draw(st.sampled_from(["", "", "", "Acme", "iqos", "Reima"])),
                tags=draw(
                    st.sampled_from([(), (), (), ("sale",), ("no_points",), ("x", "NO_POINTS")])
                ),
                kind=draw(st.sampled_from([LineKind.GOODS] * 3 + [LineKind.SERVICE])),
                discount_minor=discount,
                promo_discount_minor=promo,
            )
        )
    promo_code = "P" if stack and draw(st.booleans()) else ""
    cart = Cart(
        "RUB", tuple(lines), delivery_minor=draw(st.integers(0, 5_000)), promo_code=promo_code
    )
    return program, tier_id, method, cart, draw(wallets(sorted(program.sources)))


def spendable_now(bucket: Bucket) -> bool:
    """docs/rules.md §4, written out: available_at ≤ now < expires_at."""
    return bucket.available_at <= NOW and (bucket.expires_at is None or bucket.expires_at > NOW)


def spendable_by_rules(buckets: list[Bucket]) -> dict[str, int]:
    balances: dict[str, int] = defaultdict(int)
    for bucket in buckets:
        if spendable_now(bucket):
            balances[bucket.source] += bucket.remaining
    return balances


@PROPS
@given(quote_cases())
def test_quote_maximum_is_the_largest_total_that_fits_every_cap(
    case: tuple[Program, str, str, Cart, list[Bucket]],
) -> None:
    program, tier_id, method, cart, buckets = case
    pv = program.point_value_minor
    tier = program.tier(tier_id)
    result = quote(program, cart=cart, tier=tier, payment_method=method, buckets=buckets, now=NOW)
    (option,) = result.options

    eligible = [line for line in cart.lines if eligible_by_rules(program.id, line)]
    base = sum(line.net_minor for line in eligible)
    balances = spendable_by_rules(buckets)
    assert result.spendable_points == sum(balances.values())
    assert option.eligible_base_minor == base
    assert {x.line_id for x in option.excluded} == {
        line.line_id for line in cart.lines if not eligible_by_rules(program.id, line)
    }
    if base == 0:
        assert (option.max_points, option.binding) == (0, Constraint.NO_ELIGIBLE_LINES)
        return

    total_bp, source_bp = rules_for(program.id, tier_id, method)
    tier_cap = points_of(base, total_bp, pv)
    source_caps = {
        s: None if bp is None else points_of(base, bp, pv) for s, bp in source_bp.items()
    }
    granularity = sum(line.net_minor // pv for line in eligible)

    def brute(without: Constraint | None = None) -> int:
        rooms = {
            s: (
                None if without is Constraint.SOURCE_CAP else source_caps[s],
                None if without is Constraint.BALANCE else balances.get(s, 0),
            )
            for s in source_caps
        }
        return brute_maximum(
            total_cap=None if without is Constraint.TIER_CAP else tier_cap,
            granularity=None if without is Constraint.LINE_GRANULARITY else granularity,
            rooms=rooms,
        )

    maximum = option.max_points
    assert maximum == brute()
    # never above any cap or the balance
    assert maximum <= tier_cap
    assert maximum <= granularity
    assert maximum <= sum(balances.values())
    # the binding constraint: the first whose removal alone raises the maximum, else NONE
    order = [
        Constraint.TIER_CAP,
        Constraint.SOURCE_CAP,
        Constraint.BALANCE,
        Constraint.LINE_GRANULARITY,
    ]
    raises = [c for c in order if brute(c) > maximum]
    assert option.binding is (raises[0] if raises else Constraint.NONE)
    # what the shopper pays
    assert option.max_discount_minor == maximum * pv
    assert option.payable_minor == cart.total_minor - maximum * pv

    # the maximum is reachable: spend it, and check every limit on what was spent
    spent = plan_redemption(
        program,
        cart=cart,
        tier=tier,
        payment_method=method,
        points=maximum,
        buckets=buckets,
        now=NOW,
    )
    by_id = {b.bucket_id: b for b in buckets}
    taken: dict[str, int] = defaultdict(int)
    for debit in spent.debits:
        bucket = by_id[debit.bucket_id]
        assert spendable_now(bucket)
        assert 0 < debit.points <= bucket.remaining
        taken[bucket.source] += debit.points
    assert sum(taken.values()) == maximum
    for source, points in taken.items():
        cap = source_caps.get(source)
        assert cap is None or points <= cap
    eligible_ids = {line.line_id for line in eligible}
    for allocation, line in zip(spent.lines, cart.lines, strict=True):
        limit = line.net_minor // pv if line.line_id in eligible_ids else 0
        assert 0 <= allocation.points <= limit
    assert sum(a.points for a in spent.lines) == maximum
    # and one more is refused
    with pytest.raises((ExceedsMaximum, AllOrNothing)):
        plan_redemption(
            program,
            cart=cart,
            tier=tier,
            payment_method=method,
            points=maximum + 1,
            buckets=buckets,
            now=NOW,
        )


@PROPS
@given(quote_cases(), st.data())
def test_exclusive_promo_recommends_the_cheaper_option_ties_keep_the_promo(
    case: tuple[Program, str, str, Cart, list[Bucket]], data: st.DataObject
) -> None:
    _, tier_id, _, cart, buckets = case
    # the same lines under Stomatorg, with a promo code and promo discounts
    lines = []
    for line in cart.lines:
        room = line.gross_minor - line.discount_minor
        promo = data.draw(st.integers(0, room), label="promo")
        lines.append(replace(line, promo_discount_minor=promo))
    cart = replace(cart, lines=tuple(lines), promo_code="SPRING")
    tier = STOMATORG.tier(tier_id) if tier_id in STOMATORG_TIER_BP else STOMATORG.tiers[0]
    result = quote(STOMATORG, cart=cart, tier=tier, payment_method="", buckets=buckets, now=NOW)
    keep, drop = result.options
    goods = sum(line.quantity * line.unit_price_minor - line.discount_minor for line in lines)
    promo_total = sum(line.promo_discount_minor for line in lines)
    # keep: everything after the promo, no points
    assert (keep.keeps_promo, keep.max_points) == (True, 0)
    assert keep.binding is Constraint.PROMO_CONFLICT
    assert keep.payable_minor == goods - promo_total + cart.delivery_minor
    # drop: the promo comes back, points up to the maximum
    assert drop.keeps_promo is False
    assert drop.payable_minor == goods + cart.delivery_minor - drop.max_points * 100
    if drop.payable_minor < keep.payable_minor:
        assert result.recommended == 1
    else:
        assert result.recommended == 0  # cheaper or a tie: keep the promo


# --- buckets -------------------------------------------------------------------------------


@st.composite
def spend_cases(draw: st.DrawFn) -> tuple[list[Bucket], dict[str, int | None], int]:
    buckets = draw(wallets(["loyalty", "promo", "action"]))
    # equal expiries on purpose now and then, to exercise the creation-order tie-break
    if buckets and draw(st.booleans()):
        buckets = [replace(b, expires_at=buckets[0].expires_at) for b in buckets]
    limits = {s: draw(st.none() | st.integers(0, 500)) for s in ("loyalty", "promo", "action")}
    balances = spendable_by_rules(buckets)
    fits = sum(
        balances.get(s, 0) if limit is None else min(limit, balances.get(s, 0))
        for s, limit in limits.items()
    )
    return buckets, limits, draw(st.integers(0, fits + 5))


def expiry_key(bucket: Bucket) -> tuple[bool, datetime, int]:
    """First-expiring-first, written out: never-expiring last, ties by creation order."""
    far = datetime.max.replace(tzinfo=MSK)
    return (bucket.expires_at is None, bucket.expires_at or far, bucket.seq)


@PROPS
@given(spend_cases())
def test_plan_spend_takes_only_spendable_first_expiring_first(
    case: tuple[list[Bucket], dict[str, int | None], int],
) -> None:
    buckets, limits, points = case
    balances = spendable_by_rules(buckets)
    fits = sum(
        balances.get(s, 0) if limit is None else min(limit, balances.get(s, 0))
        for s, limit in limits.items()
    )
    if points > fits:
        with pytest.raises(ValueError):
            plan_spend(buckets, points=points, now=NOW, source_limits=limits)
        return
    debits = plan_spend(buckets, points=points, now=NOW, source_limits=limits)
    by_id = {b.bucket_id: b for b in buckets}
    assert sum(d.points for d in debits) == points
    taken_by_bucket = {d.bucket_id: d.points for d in debits}
    assert len(taken_by_bucket) == len(debits)  # each bucket at most once
    taken_by_source: dict[str, int] = defaultdict(int)
    for debit in debits:
        bucket = by_id[debit.bucket_id]
        # never immature, never expired
        assert spendable_now(bucket)
        assert 0 < debit.points <= bucket.remaining
        taken_by_source[bucket.source] += debit.points
    for source, taken in taken_by_source.items():
        limit = limits[source]
        assert limit is None or taken <= limit
    # debits come in expiry order
    keys = [expiry_key(by_id[d.bucket_id]) for d in debits]
    assert keys == sorted(keys)
    # first-expiring first: a spendable bucket that expires before a used one is emptied,
    # unless its source had reached its limit
    live = [b for b in buckets if b.remaining > 0 and spendable_now(b)]
    for used_id in taken_by_bucket:
        used = by_id[used_id]
        for earlier in live:
            if expiry_key(earlier) < expiry_key(used):
                emptied = taken_by_bucket.get(earlier.bucket_id, 0) == earlier.remaining
                limit = limits[earlier.source]
                at_limit = limit is not None and taken_by_source[earlier.source] == limit
                assert emptied or at_limit


@st.composite
def restore_cases(draw: st.DrawFn) -> tuple[list[DebitRecord], int]:
    records = []
    for index in range(draw(st.integers(0, 6))):
        taken = draw(st.integers(1, 50))
        expiry_days = draw(st.none() | st.integers(-5, 5))
        records.append(
            DebitRecord(
                bucket_id=index,
                taken=taken,
                returned=draw(st.integers(0, taken)),
                expires_at=None if expiry_days is None else NOW + timedelta(days=expiry_days),
                seq=index,
            )
        )
    outstanding = sum(r.taken - r.returned for r in records)
    return records, draw(st.integers(0, outstanding))


@PROPS
@given(restore_cases())
def test_plan_restore_latest_expiring_first_never_above_what_was_taken(
    case: tuple[list[DebitRecord], int],
) -> None:
    records, points = case
    restores = plan_restore(records, points=points)
    assert sum(r.points for r in restores) == points
    by_id = {r.bucket_id: r for r in records}
    given_back = {r.bucket_id: r.points for r in restores}
    for bucket_id, back in given_back.items():
        assert 0 < back <= by_id[bucket_id].outstanding
    # a record gets points only when every later-expiring one is full again
    for bucket_id in given_back:
        for other in records:
            if first_expiring_first(other) > first_expiring_first(by_id[bucket_id]):
                assert given_back.get(other.bucket_id, 0) == other.outstanding


@PROPS
@given(wallets(["loyalty", "promo"]), st.integers(0, 3_000), st.data())
def test_plan_clawback_own_bucket_then_spendable_then_debt(
    buckets: list[Bucket], points: int, data: st.DataObject
) -> None:
    own = data.draw(st.none() | st.sampled_from([b.bucket_id for b in buckets] or [None]))
    plan = plan_clawback(buckets, points=points, own_bucket_id=own, now=NOW)
    by_id = {b.bucket_id: b for b in buckets}
    assert plan.clawed_back + plan.debt == points
    assert plan.debt >= 0
    for debit in plan.debits:
        bucket = by_id[debit.bucket_id]
        assert 0 < debit.points <= bucket.remaining  # no bucket goes below zero
        if debit.bucket_id != own:
            assert spendable_now(bucket)  # others: only spendable ones
    own_left = own is not None and by_id[own].remaining > 0
    if own_left and points:
        # the accrual's own bucket first, pending, spendable or expired (never spent)
        assert plan.debits[0] == Debit(own, min(points, by_id[own].remaining))
    others = [d for d in plan.debits if d.bucket_id != own]
    keys = [expiry_key(by_id[d.bucket_id]) for d in others]
    assert keys == sorted(keys)  # then the others first-expiring-first
    # every other bucket before the last one touched was emptied
    for debit in others[:-1]:
        assert debit.points == by_id[debit.bucket_id].remaining
    if others:
        last = expiry_key(by_id[others[-1].bucket_id])
        touched = {d.bucket_id for d in others}
        for b in buckets:
            if b.bucket_id != own and b.remaining and spendable_now(b) and expiry_key(b) < last:
                assert b.bucket_id in touched  # none skipped
    if plan.debt:
        # debt only once everything takeable was taken
        takeable = sum(b.remaining for b in buckets if b.bucket_id == own or spendable_now(b))
        assert plan.clawed_back == takeable


# --- returns -------------------------------------------------------------------------------


@st.composite
def order_lines(draw: st.DrawFn) -> list[UnitsLine]:
    return [
        UnitsLine(f"l{i}", quantity=draw(st.integers(1, 12)), points=draw(st.integers(0, 5_000)))
        for i in range(draw(st.integers(1, 4)))
    ]


@PROPS
@given(order_lines(), st.data())
def test_partial_returns_never_give_back_more_and_everything_gives_back_all(
    lines: list[UnitsLine], data: st.DataObject
) -> None:
    back: dict[str, int] = defaultdict(int)
    for _ in range(data.draw(st.integers(0, 6), label="steps")):
        open_lines = [line for line in lines if line.remaining_units > 0]
        if not open_lines:
            break
        chosen = data.draw(
            st.lists(st.sampled_from(open_lines), min_size=1, unique_by=lambda x: x.line_id)
        )
        returned = [
            ReturnedLine(line.line_id, data.draw(st.integers(1, line.remaining_units)))
            for line in chosen
        ]
        units = units_to_return(lines, returned)
        for move in plan_line_returns(lines, units):
            assert move.points >= 0
            back[move.line_id] += move.points
        lines = [
            replace(x, returned_units=x.returned_units + units.get(x.line_id, 0)) for x in lines
        ]
        for line in lines:
            # after K of n units: floor(P × K / n), and never more than P
            assert back[line.line_id] == floor(
                Fraction(line.points * line.returned_units, line.quantity)
            )
            assert back[line.line_id] <= line.points
    # one unit too many is refused
    for line in lines:
        with pytest.raises(ExceedsRemaining):
            units_to_return(lines, [ReturnedLine(line.line_id, line.remaining_units + 1)])
    # the rest of the order: everything comes back, exactly
    for move in plan_line_returns(lines, units_to_return(lines, [])):
        back[move.line_id] += move.points
    for line in lines:
        assert back[line.line_id] == line.points


@PROPS
@given(st.integers(0, 100_000), st.integers(1, 40), st.data())
def test_one_line_any_steps(points: int, quantity: int, data: st.DataObject) -> None:
    line = UnitsLine("a", quantity, points)
    total = 0
    while line.remaining_units:
        step = data.draw(st.integers(1, line.remaining_units))
        (move,) = plan_line_returns([line], {"a": step})
        total += move.points
        line = replace(line, returned_units=line.returned_units + step)
        assert 0 <= total <= points
    assert total == points
