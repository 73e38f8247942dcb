"""pricing.caps: the caps of docs/rules.md §4 solved together, and the constraint that binds."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pricing.buckets import Bucket
from pricing.caps import CapRates, Caps, Constraint, cap_rates
from pricing.cart import Cart, CartLine, LineKind
from pricing.program import Program
from pricing.quote import Option, quote

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=MSK)


def buckets(**by_source: int) -> list[Bucket]:
    """One spendable bucket per source, expiring in 30 days."""
    return [
        Bucket(i, source, points, NOW - timedelta(days=1), NOW + timedelta(days=30), i)
        for i, (source, points) in enumerate(by_source.items())
    ]


def best(
    program: Program, cart: Cart, *, payment_method: str = "", tier: str = "", **balances: int
) -> Option:
    chosen = program.tier(tier) if tier else program.tiers[0]
    result = quote(
        program,
        cart=cart,
        tier=chosen,
        payment_method=payment_method,
        buckets=buckets(**balances),
        now=NOW,
    )
    assert len(result.options) == 1
    return result.options[0]


def one_line(price: int) -> Cart:
    return Cart("RUB", (CartLine("a", 1, price),))


class TestCapRates:
    def test_stomatorg_tier_caps_and_no_source_caps(self, stomatorg: Program) -> None:
        rates = cap_rates(stomatorg, tier=stomatorg.tier("vip"), payment_method="")
        assert rates == CapRates(1500, {"loyalty": None, "action": None, "promo": None})

    def test_denco_without_the_card(self, denco: Program) -> None:
        rates = cap_rates(denco, tier=denco.tiers[0], payment_method="cash")
        assert rates == CapRates(5000, {"loyalty": None, "promo": 5000})

    def test_denco_card_lifts_total_and_loyalty_only(self, denco: Program) -> None:
        rates = cap_rates(denco, tier=denco.tiers[0], payment_method="denco_card")
        assert rates == CapRates(9999, {"loyalty": 9999, "promo": 5000}, "denco_card")


class TestCapsBuild:
    def test_points_from_basis_points(self) -> None:
        caps = Caps.build(
            CapRates(9999, {"loyalty": 9999, "promo": 5000, "free": None}),
            eligible_base_minor=450,
            point_value_minor=100,
            balances={"loyalty": 7},
            line_granularity=3,
        )
        # total: 450 × 9999 / 10000 = 449.955 → 449 minor → 4; promo 225 minor → 2
        assert caps.tier_cap == 4
        assert dict(caps.source_caps) == {"loyalty": 4, "promo": 2, "free": None}
        assert caps.source_limits() == {"loyalty": 4, "promo": 2, "free": None}
        # rooms: loyalty min(4, 7) = 4, promo min(2, 0) = 0, free min(−, 0) = 0 → 4;
        # min(tier 4, granularity 3, sources 4) = 3
        assert caps.maximum() == 3
        assert caps.solve() == (3, Constraint.LINE_GRANULARITY)

    def test_maximum_without_each_constraint(self) -> None:
        caps = Caps(
            tier_cap=30,
            source_caps={"loyalty": None},
            balances={"loyalty": 20},
            line_granularity=25,
        )
        assert caps.maximum() == 20  # min(30, 25, 20)
        assert caps.maximum(without=Constraint.TIER_CAP) == 20
        assert caps.maximum(without=Constraint.BALANCE) == 25  # min(30, 25), loyalty uncapped
        assert caps.maximum(without=Constraint.LINE_GRANULARITY) == 20
        assert caps.solve() == (20, Constraint.BALANCE)

    def test_capped_sources_are_those_whose_cap_is_below_their_balance(self) -> None:
        # The source a SOURCE_CAP explanation names: its own cap, not its balance, holds it
        # back. action: cap 40 = balance 40, the balance holds it back as much (not capped);
        # loyalty: cap 100 > balance 30; promo: cap 50 < balance 80 (capped); free: no cap.
        caps = Caps(
            tier_cap=1_000,
            source_caps={"action": 40, "free": None, "loyalty": 100, "promo": 50},
            balances={"action": 40, "free": 5, "loyalty": 30, "promo": 80},
            line_granularity=1_000,
        )
        assert caps.capped_sources() == ["promo"]


class TestBindingConstraint:
    def test_tier_cap(self, stomatorg: Program) -> None:
        # base tier 3 %: 100 000 × 300 / 10000 = 3 000 minor → 30 points;
        # balance 500, granularity 1 000 → max 30; only dropping the tier cap raises it
        option = best(stomatorg, one_line(100_000), loyalty=500)
        assert (option.max_points, option.binding) == (30, Constraint.TIER_CAP)

    def test_tier_cap_of_a_higher_tier(self, stomatorg: Program) -> None:
        # vip 15 %: 100 000 × 1500 / 10000 = 15 000 minor → 150 points
        option = best(stomatorg, one_line(100_000), tier="vip", loyalty=500)
        assert (option.max_points, option.binding) == (150, Constraint.TIER_CAP)

    def test_source_cap(self, denco: Program) -> None:
        # denco_card: total 100 000 × 9999 / 10000 = 99 990 minor → 999;
        # promo stays 50 %: 50 000 minor → 500; promo balance 2 000; granularity 1 000
        # max = min(999, 1000, min(500, 2000)) = 500; without the source cap: 999
        option = best(denco, one_line(100_000), payment_method="denco_card", promo=2_000)
        assert (option.max_points, option.binding) == (500, Constraint.SOURCE_CAP)

    def test_balance(self, stomatorg: Program) -> None:
        # tier 30 (as above), granularity 1 000, balance 20 → 20; without the balance: 30
        option = best(stomatorg, one_line(100_000), loyalty=20)
        assert (option.max_points, option.binding) == (20, Constraint.BALANCE)

    def test_balance_zero(self, stomatorg: Program) -> None:
        option = best(stomatorg, one_line(100_000))
        assert (option.max_points, option.binding) == (0, Constraint.BALANCE)

    def test_balance_is_summed_over_sources(self, stomatorg: Program) -> None:
        # loyalty 10 + action 5 + promo 7 = 22 < tier 30
        option = best(stomatorg, one_line(100_000), loyalty=10, action=5, promo=7)
        assert (option.max_points, option.binding) == (22, Constraint.BALANCE)

    def test_line_granularity(self, denco: Program) -> None:
        # three 1.50 RUB lines, denco_card 99.99 %: 450 × 9999 / 10000 = 449.955 → 449 minor
        # → 4 points; loyalty cap the same 4; granularity 1 + 1 + 1 = 3 → 3
        cart = Cart("RUB", tuple(CartLine(f"l{i}", 1, 150) for i in range(3)))
        option = best(denco, cart, payment_method="denco_card", loyalty=10)
        assert (option.max_points, option.binding) == (3, Constraint.LINE_GRANULARITY)

    def test_none_when_two_caps_tie(self, stomatorg: Program) -> None:
        # tier 30 and balance 30: dropping either alone leaves the other at 30
        option = best(stomatorg, one_line(100_000), loyalty=30)
        assert (option.max_points, option.binding) == (30, Constraint.NONE)

    def test_none_when_tier_and_promo_cap_are_equal(self, denco: Program) -> None:
        # no card: tier 50 % → 500, promo 50 % → 500, promo balance 2 000: both bind together
        option = best(denco, one_line(100_000), promo=2_000)
        assert (option.max_points, option.binding) == (500, Constraint.NONE)

    def test_first_in_order_when_two_each_would_raise_it(self, denco: Program) -> None:
        # card: loyalty room min(999, 100) = 100, promo room min(500, 1 000) = 500 → 600
        # without source caps: 100 + 1 000 = 1 100 → min(999, 1 000, 1 100) = 999 > 600
        # without balances: 999 + 500 → min(999, 1 000, 1 499) = 999 > 600
        # SOURCE_CAP comes before BALANCE
        option = best(
            denco, one_line(100_000), payment_method="denco_card", loyalty=100, promo=1_000
        )
        assert (option.max_points, option.binding) == (600, Constraint.SOURCE_CAP)

    def test_no_eligible_lines(self, stomatorg: Program) -> None:
        cart = Cart(
            "RUB",
            (
                CartLine("tagged", 1, 100_000, tags=("no_points",)),
                CartLine("install", 1, 50_000, kind=LineKind.SERVICE),
            ),
        )
        option = best(stomatorg, cart, loyalty=500)
        assert (option.max_points, option.binding) == (0, Constraint.NO_ELIGIBLE_LINES)
        assert option.eligible_base_minor == 0

    def test_no_eligible_lines_when_the_base_is_zero(self, stomatorg: Program) -> None:
        # a line discounted to 0
        cart = Cart("RUB", (CartLine("free", 1, 5_000, discount_minor=5_000),))
        option = best(stomatorg, cart, loyalty=500)
        assert (option.max_points, option.binding) == (0, Constraint.NO_ELIGIBLE_LINES)

    @pytest.mark.parametrize("method", ["", "cash", "denco", "denco card"])
    def test_other_payment_methods_keep_the_tier_cap(self, denco: Program, method: str) -> None:
        # 50 % of 100 000 = 50 000 minor → 500; loyalty 2 000
        option = best(denco, one_line(100_000), payment_method=method, loyalty=2_000)
        assert (option.max_points, option.binding) == (500, Constraint.TIER_CAP)

    @pytest.mark.parametrize("method", ["DENCO_CARD", " denco_card ", "\tDenco_Card\n"])
    def test_the_card_is_a_match_key(self, denco: Program, method: str) -> None:
        # Issue 13: "DENCO_CARD" got the ordinary cap. Trimmed and case ignored (rules.md §3), it
        # is the card: 99.99 % of 100 000 = 99 990 minor → 999 points (loyalty 2 000).
        option = best(denco, one_line(100_000), payment_method=method, loyalty=2_000)
        assert option.max_points == 999
