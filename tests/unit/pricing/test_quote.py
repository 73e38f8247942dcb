"""pricing.quote: the maximum, its allocation, what is paid and earned, the promo options."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pricing.allocation import LineAllocation
from pricing.buckets import Bucket
from pricing.caps import Constraint
from pricing.cart import Cart, CartLine, LineKind
from pricing.eligibility import ExcludedLine
from pricing.errors import CurrencyMismatch
from pricing.program import Program, SelectionMode
from pricing.quote import Quote, quote

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=MSK)


def wallet(**by_source: int) -> list[Bucket]:
    """One spendable bucket per source."""
    return [
        Bucket(i, source, points, NOW - timedelta(days=1), NOW + timedelta(days=30), i)
        for i, (source, points) in enumerate(by_source.items())
    ]


def run(
    program: Program,
    cart: Cart,
    *,
    payment_method: str = "",
    tier: str = "",
    buckets: list[Bucket] | None = None,
    **balances: int,
) -> Quote:
    return quote(
        program,
        cart=cart,
        tier=program.tier(tier) if tier else program.tiers[0],
        payment_method=payment_method,
        buckets=buckets if buckets is not None else wallet(**balances),
        now=NOW,
    )


THREE_AT_1_50 = Cart("RUB", tuple(CartLine(f"l{i}", 1, 150) for i in range(3)))


class TestLineGranularity:
    def test_three_lines_at_1_50_under_99_99_percent_give_3_not_4(self, denco: Program) -> None:
        # base 450 × 9999 / 10000 = 449.955 → 449 minor → 4 points;
        # granularity floor(150 / 100) = 1 per line: 1 + 1 + 1 = 3 → 3
        result = run(denco, THREE_AT_1_50, payment_method="denco_card", loyalty=10)
        assert len(result.options) == 1
        option = result.options[0]
        assert option.max_points == 3
        assert option.max_discount_minor == 300
        assert option.binding is Constraint.LINE_GRANULARITY
        assert option.eligible_base_minor == 450
        assert option.allocations == (
            LineAllocation("l0", 1, 1, 100),
            LineAllocation("l1", 1, 1, 100),
            LineAllocation("l2", 1, 1, 100),
        )
        # 450 − 300 = 150
        assert option.payable_minor == 150
        assert option.selection_mode is SelectionMode.ALL_OR_NOTHING
        assert option.points_to_earn == 0  # denco earns 0 %

    def test_without_the_card_50_percent(self, denco: Program) -> None:
        # 450 × 5000 / 10000 = 225 minor → 2 points; granularity 3 → 2, the tier cap binds
        # 2 over equal lines: 0.67 each → 0, 0, 0; two left, equal remainders → l0, l1
        option = run(denco, THREE_AT_1_50, loyalty=10).options[0]
        assert (option.max_points, option.binding) == (2, Constraint.TIER_CAP)
        assert [a.points for a in option.allocations] == [1, 1, 0]
        # 450 − 200 = 250
        assert option.payable_minor == 250


ONE_THOUSAND = Cart("RUB", (CartLine("a", 1, 100_000),))


class TestDencoCard:
    """denco_card lifts the total and `loyalty` to 99.99 %; `promo` stays at 50 %."""

    def test_promo_points_only(self, denco: Program) -> None:
        # 1 000 RUB: promo cap 50 000 minor → 500 with or without the card
        plain = run(denco, ONE_THOUSAND, promo=2_000).options[0]
        card = run(denco, ONE_THOUSAND, payment_method="denco_card", promo=2_000).options[0]
        # without: tier 500 = promo cap 500 → NONE
        assert (plain.max_points, plain.binding) == (500, Constraint.NONE)
        # with: tier 99 990 minor → 999, promo still 500 → the source cap binds
        assert (card.max_points, card.binding) == (500, Constraint.SOURCE_CAP)
        # 100 000 − 50 000 = 50 000
        assert card.payable_minor == 50_000

    def test_loyalty_points_only(self, denco: Program) -> None:
        plain = run(denco, ONE_THOUSAND, loyalty=2_000).options[0]
        card = run(denco, ONE_THOUSAND, payment_method="denco_card", loyalty=2_000).options[0]
        # without: 50 % → 500, tier cap
        assert (plain.max_points, plain.binding) == (500, Constraint.TIER_CAP)
        # with: total 999 and loyalty 999 both bind (granularity 1 000, balance 2 000) → NONE
        assert (card.max_points, card.binding) == (999, Constraint.NONE)
        # 100 000 − 99 900 = 100
        assert card.payable_minor == 100

    def test_both_sources(self, denco: Program) -> None:
        # loyalty 300, promo 1 000
        plain = run(denco, ONE_THOUSAND, loyalty=300, promo=1_000).options[0]
        card = run(
            denco, ONE_THOUSAND, payment_method="denco_card", loyalty=300, promo=1_000
        ).options[0]
        # without: rooms 300 + min(500, 1 000) = 800 but tier 500 → 500
        assert (plain.max_points, plain.binding) == (500, Constraint.TIER_CAP)
        # with: 300 + min(500, 1 000) = 800 < tier 999; without the promo cap 300 + 1 000 → 999
        assert (card.max_points, card.binding) == (800, Constraint.SOURCE_CAP)

    def test_both_sources_enough_loyalty(self, denco: Program) -> None:
        # card: loyalty 600 + promo min(500, 1 000) = 1 100 > tier 999 → 999, tier cap
        card = run(
            denco, ONE_THOUSAND, payment_method="denco_card", loyalty=600, promo=1_000
        ).options[0]
        assert (card.max_points, card.binding) == (999, Constraint.TIER_CAP)


def ten_thousand_with_promo(promo_minor: int, *, delivery: int = 0) -> Cart:
    return Cart(
        "RUB",
        (CartLine("a", 1, 1_000_000, promo_discount_minor=promo_minor),),
        delivery_minor=delivery,
        promo_code="SPRING",
    )


class TestExclusivePromo:
    """Stomatorg (base tier, 3 %) on a 10 000 RUB line with a promo code, 1 000 points."""

    def test_keep_the_promo_is_cheaper(self, stomatorg: Program) -> None:
        result = run(stomatorg, ten_thousand_with_promo(50_000), loyalty=1_000)
        keep, drop = result.options
        # keep: 1 000 000 − 50 000 = 950 000, no points
        assert keep.keeps_promo is True
        assert (keep.max_points, keep.binding) == (0, Constraint.PROMO_CONFLICT)
        assert keep.payable_minor == 950_000
        assert keep.eligible_base_minor == 950_000
        assert [a.points for a in keep.allocations] == [0]
        # earns 950 000 × 300 / 10000 = 28 500 minor → 285
        assert keep.points_to_earn == 285
        # drop: the promo comes back; 1 000 000 × 300 / 10000 = 30 000 minor → 300 points
        assert drop.keeps_promo is False
        assert (drop.max_points, drop.binding) == (300, Constraint.TIER_CAP)
        assert drop.eligible_base_minor == 1_000_000
        # 1 000 000 − 30 000 = 970 000
        assert drop.payable_minor == 970_000
        # earns (1 000 000 − 30 000) × 3 % = 29 100 minor → 291
        assert drop.points_to_earn == 291
        # 950 000 < 970 000 → keep the promo
        assert result.recommended == 0

    def test_drop_the_promo_is_cheaper(self, stomatorg: Program) -> None:
        result = run(stomatorg, ten_thousand_with_promo(10_000), loyalty=1_000)
        keep, drop = result.options
        # keep: 1 000 000 − 10 000 = 990 000; drop: 970 000 → drop
        assert keep.payable_minor == 990_000
        assert drop.payable_minor == 970_000
        assert result.recommended == 1

    def test_tie_keeps_the_promo(self, stomatorg: Program) -> None:
        result = run(stomatorg, ten_thousand_with_promo(30_000), loyalty=1_000)
        keep, drop = result.options
        # keep: 1 000 000 − 30 000 = 970 000 = drop 970 000 → keep
        assert keep.payable_minor == drop.payable_minor == 970_000
        assert result.recommended == 0

    def test_without_points_the_promo_is_recommended(self, stomatorg: Program) -> None:
        result = run(stomatorg, ten_thousand_with_promo(10_000))
        keep, drop = result.options
        # no balance: drop pays 1 000 000 > keep 990 000
        assert (drop.max_points, drop.binding) == (0, Constraint.BALANCE)
        assert (keep.payable_minor, drop.payable_minor) == (990_000, 1_000_000)
        assert result.recommended == 0

    def test_delivery_in_both_payables(self, stomatorg: Program) -> None:
        result = run(stomatorg, ten_thousand_with_promo(10_000, delivery=30_000), loyalty=1_000)
        keep, drop = result.options
        # keep 990 000 + 30 000; drop 970 000 + 30 000; the cap is unchanged by delivery
        assert keep.payable_minor == 1_020_000
        assert drop.payable_minor == 1_000_000
        assert drop.max_points == 300

    def test_a_promo_code_without_promo_discount(self, stomatorg: Program) -> None:
        cart = Cart("RUB", (CartLine("a", 1, 100_000),), promo_code="NOTHING")
        result = run(stomatorg, cart, loyalty=1_000)
        keep, drop = result.options
        # keep 100 000; drop 100 000 − 3 000 = 97 000 → drop
        assert (keep.payable_minor, drop.payable_minor) == (100_000, 97_000)
        assert result.recommended == 1

    def test_no_promo_code_one_option(self, stomatorg: Program) -> None:
        result = run(stomatorg, ONE_THOUSAND, loyalty=1_000)
        assert len(result.options) == 1
        assert result.options[0].keeps_promo is False
        assert result.recommended == 0


class TestStackPromo:
    def test_points_on_prices_after_the_promo(self, denco: Program) -> None:
        cart = Cart(
            "RUB",
            (
                CartLine("a", 1, 10_000, promo_discount_minor=2_000),
                CartLine("b", 1, 5_000),
            ),
            delivery_minor=1_000,
            promo_code="SPRING",
        )
        result = run(denco, cart, loyalty=1_000)
        assert len(result.options) == 1
        assert result.recommended == 0
        option = result.options[0]
        assert option.keeps_promo is True
        # base (10 000 − 2 000) + 5 000 = 13 000; 50 % = 6 500 minor → 65 points
        assert option.eligible_base_minor == 13_000
        assert (option.max_points, option.binding) == (65, Constraint.TIER_CAP)
        # 65 × 8 000 / 13 000 = 40, 65 × 5 000 / 13 000 = 25 exactly
        assert option.allocations == (
            LineAllocation("a", 1, 40, 4_000),
            LineAllocation("b", 1, 25, 2_500),
        )
        # 13 000 + delivery 1 000 − 6 500 = 7 500
        assert option.payable_minor == 7_500


class TestQuoteDetails:
    def test_excluded_lines_earn_but_take_no_points(self, stomatorg: Program) -> None:
        cart = Cart(
            "RUB",
            (
                CartLine("goods", 1, 100_000),
                CartLine("tagged", 1, 20_000, tags=("No_Points",)),
                CartLine("install", 1, 30_000, kind=LineKind.SERVICE),
            ),
            delivery_minor=50_000,
        )
        option = run(stomatorg, cart, loyalty=500).options[0]
        assert option.excluded == (
            ExcludedLine("tagged", "no_points"),
            ExcludedLine("install", "services"),
        )
        # base 100 000 only → 3 % = 3 000 minor → 30 points, all on "goods"
        assert option.max_points == 30
        assert option.allocations == (LineAllocation("goods", 1, 30, 3_000),)
        # pays 100 000 + 20 000 + 30 000 + 50 000 − 3 000 = 197 000
        assert option.payable_minor == 197_000
        # earns on goods: (100 000 − 3 000) + 20 000 = 117 000 × 3 % = 3 510 minor → 35;
        # the service and delivery earn nothing
        assert option.points_to_earn == 35

    def test_allocation_by_largest_remainder(self, stomatorg: Program) -> None:
        cart = Cart(
            "RUB",
            (CartLine("a", 1, 50_000), CartLine("b", 2, 15_000), CartLine("c", 1, 20_001)),
        )
        option = run(stomatorg, cart, loyalty=500).options[0]
        # base 50 000 + 30 000 + 20 001 = 100 001 × 3 % = 3 000.03 → 3 000 minor → 30 points
        # quotas 30 × (50 000, 30 000, 20 001) / 100 001 = 14.9998, 8.9999, 6.0001 → 14, 8, 6;
        # 2 left; remainders 99 986, 99 992, 24 (/100 001) → b then a: 15, 9, 6
        assert option.max_points == 30
        assert [(a.line_id, a.quantity, a.points) for a in option.allocations] == [
            ("a", 1, 15),
            ("b", 2, 9),
            ("c", 1, 6),
        ]

    def test_spendable_points_count_only_spendable_buckets(self, stomatorg: Program) -> None:
        buckets = [
            Bucket(1, "loyalty", 7, NOW - timedelta(days=1), NOW + timedelta(days=1), 1),
            Bucket(2, "action", 5, NOW - timedelta(days=400), None, 2),
            Bucket(3, "loyalty", 100, NOW + timedelta(seconds=1), None, 3),  # pending
            Bucket(4, "promo", 100, NOW - timedelta(days=9), NOW, 4),  # expired at NOW
        ]
        result = run(stomatorg, ONE_THOUSAND, buckets=buckets)
        # 7 + 5 = 12
        assert result.spendable_points == 12
        assert result.tier_id == "base"
        assert (result.options[0].max_points, result.options[0].binding) == (12, Constraint.BALANCE)

    def test_tier_id_and_rate(self, stomatorg: Program) -> None:
        result = run(stomatorg, ONE_THOUSAND, tier="partner", loyalty=500)
        # partner 10 %: 10 000 minor → 100 points
        assert result.tier_id == "partner"
        assert result.options[0].max_points == 100
        # earns 7 % of 100 000 − 10 000 = 90 000 → 6 300 minor → 63
        assert result.options[0].points_to_earn == 63

    def test_currency_mismatch(self, stomatorg: Program) -> None:
        cart = Cart("USD", (CartLine("a", 1, 100),))
        with pytest.raises(CurrencyMismatch) as caught:
            run(stomatorg, cart, loyalty=5)
        assert (caught.value.expected, caught.value.got) == ("RUB", "USD")
        assert caught.value.metadata() == {"expected": "RUB", "got": "USD"}
