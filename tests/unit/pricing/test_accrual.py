"""pricing.accrual: the base (goods net minus points spent), the rate, the split, the dates."""

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from pricing.accrual import AccrualLine, earning_bases, plan_accrual, points_to_earn
from pricing.cart import Cart, CartLine, LineKind
from pricing.program import Program

MSK = ZoneInfo("Europe/Moscow")
DELIVERED = datetime(2026, 3, 3, 12, 0, tzinfo=MSK)

CART = Cart(
    "RUB",
    (
        CartLine("g1", 1, 100_000),
        CartLine("g2", 2, 25_000),
        CartLine("svc", 1, 30_000, kind=LineKind.SERVICE),
    ),
    delivery_minor=20_000,
)
SPENT = {"g1": 20, "g2": 10}


class TestStomatorg:
    def test_base_rate_split_and_dates(self, stomatorg: Program) -> None:
        plan = plan_accrual(
            stomatorg,
            cart=CART,
            spent_by_line=SPENT,
            tier=stomatorg.tier("base"),
            delivered_at=DELIVERED,
        )
        # bases: g1 100 000 − 20 × 100 = 98 000; g2 50 000 − 10 × 100 = 49 000; service and
        # delivery earn nothing → 147 000 × 300 / 10000 = 4 410 minor → 44 points
        assert plan.base_minor == 147_000
        assert plan.points == 44
        assert plan.source == "loyalty"
        # 44 × 98 000 / 147 000 = 29.33 → 29; 44 × 49 000 / 147 000 = 14.67 → 14; 1 left → g2
        assert plan.lines == (
            AccrualLine("g1", 1, 98_000, 29),
            AccrualLine("g2", 2, 49_000, 15),
            AccrualLine("svc", 1, 0, 0),
        )
        # pending 7 days: 03-03 12:00 + 7 = 03-10 12:00 MSK;
        # expires 90 days later: Mar 21 + Apr 30 + May 31 = 82 → June 8 is day 90
        assert plan.available_at == datetime(2026, 3, 10, 12, 0, tzinfo=MSK)
        assert plan.expires_at == datetime(2026, 6, 8, 12, 0, tzinfo=MSK)

    def test_points_to_earn_matches(self, stomatorg: Program) -> None:
        tier = stomatorg.tier("base")
        assert points_to_earn(CART, spent_by_line=SPENT, tier=tier, point_value_minor=100) == 44

    def test_vip_rate(self, stomatorg: Program) -> None:
        plan = plan_accrual(
            stomatorg,
            cart=CART,
            spent_by_line={},
            tier=stomatorg.tier("vip"),
            delivered_at=DELIVERED,
        )
        # 150 000 × 1000 / 10000 = 15 000 minor → 150; split 100 000 : 50 000 → 100, 50
        assert plan.points == 150
        assert [x.points for x in plan.lines] == [100, 50, 0]

    def test_excluded_goods_still_earn(self, stomatorg: Program) -> None:
        cart = Cart("RUB", (CartLine("t", 1, 20_000, tags=("no_points",)),))
        plan = plan_accrual(
            stomatorg, cart=cart, spent_by_line={}, tier=stomatorg.tiers[0], delivered_at=DELIVERED
        )
        # exclusion rules limit spending only: 20 000 × 3 % = 600 minor → 6
        assert plan.points == 6

    def test_rounds_down(self, stomatorg: Program) -> None:
        cart = Cart("RUB", (CartLine("a", 1, 3_333),))
        plan = plan_accrual(
            stomatorg, cart=cart, spent_by_line={}, tier=stomatorg.tiers[0], delivered_at=DELIVERED
        )
        # 3 333 × 300 / 10000 = 99.99 → 99 minor → 0 points
        assert plan.points == 0
        assert plan.lines == (AccrualLine("a", 1, 3_333, 0),)

    def test_services_only(self, stomatorg: Program) -> None:
        cart = Cart("RUB", (CartLine("s", 1, 500_000, kind=LineKind.SERVICE),))
        plan = plan_accrual(
            stomatorg,
            cart=cart,
            spent_by_line={},
            tier=stomatorg.tier("vip"),
            delivered_at=DELIVERED,
        )
        assert (plan.base_minor, plan.points) == (0, 0)

    def test_promo_discount_is_not_paid(self, stomatorg: Program) -> None:
        cart = Cart(
            "RUB", (CartLine("a", 1, 100_000, discount_minor=10_000, promo_discount_minor=5_000),)
        )
        # 100 000 − 10 000 − 5 000 = 85 000 × 3 % = 2 550 minor → 25
        bases = earning_bases(cart, spent_by_line={}, point_value_minor=100)
        assert bases == {"a": 85_000}
        assert (
            points_to_earn(cart, spent_by_line={}, tier=stomatorg.tiers[0], point_value_minor=100)
            == 25
        )

    def test_base_never_negative(self) -> None:
        cart = Cart("RUB", (CartLine("a", 1, 150),))
        # 150 − 2 × 100 = −50 → 0
        assert earning_bases(cart, spent_by_line={"a": 2}, point_value_minor=100) == {"a": 0}

    def test_a_source_without_expiry(self, stomatorg: Program) -> None:
        program = replace(stomatorg, accrual_source="action")
        plan = plan_accrual(
            program, cart=CART, spent_by_line={}, tier=program.tiers[0], delivered_at=DELIVERED
        )
        assert plan.source == "action"
        assert plan.available_at == datetime(2026, 3, 10, 12, 0, tzinfo=MSK)
        assert plan.expires_at is None


class TestDenco:
    def test_earns_nothing_no_delay_one_year(self, denco: Program) -> None:
        plan = plan_accrual(
            denco, cart=CART, spent_by_line=SPENT, tier=denco.tiers[0], delivered_at=DELIVERED
        )
        # rate 0 %: 147 000 × 0 = 0
        assert (plan.base_minor, plan.points) == (147_000, 0)
        assert [x.points for x in plan.lines] == [0, 0, 0]
        # no delay; 365 days after 2026-03-03 (no 29 February in between) = 2027-03-03
        assert plan.available_at == DELIVERED
        assert plan.expires_at == datetime(2027, 3, 3, 12, 0, tzinfo=MSK)
