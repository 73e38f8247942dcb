"""pricing.redemption: the checks of an ApplyRedemption, its allocation and the buckets spent."""

from datetime import datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from pricing.allocation import LineAllocation
from pricing.buckets import Bucket, Debit
from pricing.cart import Cart, CartLine
from pricing.errors import AllOrNothing, CurrencyMismatch, ExceedsMaximum, PromoConflict
from pricing.program import Program
from pricing.quote import check_currency
from pricing.redemption import RedemptionPlan, plan_redemption

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=MSK)
LONG_AGO = datetime(2025, 1, 1, tzinfo=MSK)


def plan(
    program: Program,
    cart: Cart,
    points: int,
    buckets: list[Bucket],
    *,
    payment_method: str = "",
) -> RedemptionPlan:
    return plan_redemption(
        program,
        cart=cart,
        tier=program.tiers[0],
        payment_method=payment_method,
        points=points,
        buckets=buckets,
        now=NOW,
    )


class TestAllOrNothing:
    CART = Cart("RUB", (CartLine("a", 2, 4_000), CartLine("b", 1, 2_000)))
    BUCKETS: ClassVar[list[Bucket]] = [
        Bucket(1, "loyalty", 200, LONG_AGO, datetime(2026, 6, 1, tzinfo=MSK), 1)
    ]

    def test_exactly_the_maximum(self, denco: Program) -> None:
        # base 8 000 + 2 000 = 10 000; 50 % = 5 000 minor → 50 points
        result = plan(denco, self.CART, 50, self.BUCKETS)
        assert (result.points, result.discount_minor, result.maximum) == (50, 5_000, 50)
        # 50 × 8 000 / 10 000 = 40, 50 × 2 000 / 10 000 = 10
        assert result.lines == (
            LineAllocation("a", 2, 40, 4_000),
            LineAllocation("b", 1, 10, 1_000),
        )
        assert result.debits == (Debit(1, 50),)

    @pytest.mark.parametrize("asked", [49, 1, 51, 1_000])
    def test_any_other_amount(self, denco: Program, asked: int) -> None:
        # more than the maximum is ALL_OR_NOTHING too: it comes before EXCEEDS_MAXIMUM
        with pytest.raises(AllOrNothing) as caught:
            plan(denco, self.CART, asked, self.BUCKETS)
        assert (caught.value.requested, caught.value.maximum) == (asked, 50)
        assert caught.value.metadata() == {"requested": str(asked), "maximum": "50"}

    def test_promo_capped_source_spent_first_within_its_cap(self, denco: Program) -> None:
        cart = Cart("RUB", (CartLine("a", 1, 100_000),))
        buckets = [
            Bucket(1, "loyalty", 300, LONG_AGO, datetime(2026, 5, 1, tzinfo=MSK), 1),
            Bucket(2, "promo", 1_000, LONG_AGO, datetime(2026, 3, 20, tzinfo=MSK), 2),
        ]
        # card: loyalty 300 + promo min(50 000 minor → 500, 1 000) = 800 < tier 999
        result = plan(denco, cart, 800, buckets, payment_method="denco_card")
        assert result.maximum == 800
        # promo expires first (03-20) but gives at most 500; then loyalty 300
        assert result.debits == (Debit(2, 500), Debit(1, 300))


class TestAnyUpToMax:
    CART = Cart(
        "RUB",
        (
            CartLine("a", 1, 60_000),
            CartLine("tagged", 1, 20_000, tags=("no_points",)),
            CartLine("b", 4, 10_000),
        ),
    )
    BUCKETS: ClassVar[list[Bucket]] = [
        Bucket(1, "action", 5, LONG_AGO, None, 1),
        Bucket(2, "loyalty", 8, LONG_AGO, datetime(2026, 4, 1, tzinfo=MSK), 2),
        Bucket(3, "promo", 50, LONG_AGO, datetime(2026, 4, 2, tzinfo=MSK), 3),
    ]

    def test_any_amount_up_to_the_maximum(self, stomatorg: Program) -> None:
        # base 60 000 + 40 000 = 100 000 (tagged excluded) × 3 % = 3 000 minor → 30 points
        result = plan(stomatorg, self.CART, 10, self.BUCKETS)
        assert (result.points, result.discount_minor, result.maximum) == (10, 1_000, 30)
        # 10 × 60 000 / 100 000 = 6, 10 × 40 000 / 100 000 = 4; every cart line, in order
        assert result.lines == (
            LineAllocation("a", 1, 6, 600),
            LineAllocation("tagged", 1, 0, 0),
            LineAllocation("b", 4, 4, 400),
        )
        # loyalty (04-01) 8, then promo (04-02) 2; action never expires: last
        assert result.debits == (Debit(2, 8), Debit(3, 2))

    def test_the_maximum(self, stomatorg: Program) -> None:
        result = plan(stomatorg, self.CART, 30, self.BUCKETS)
        # loyalty 8, promo 22
        assert result.debits == (Debit(2, 8), Debit(3, 22))
        # 30 × 0.6 = 18, 30 × 0.4 = 12
        assert [x.points for x in result.lines] == [18, 0, 12]

    def test_zero(self, stomatorg: Program) -> None:
        result = plan(stomatorg, self.CART, 0, self.BUCKETS)
        assert (result.points, result.debits) == (0, ())
        assert [x.points for x in result.lines] == [0, 0, 0]

    def test_exceeds_maximum(self, stomatorg: Program) -> None:
        with pytest.raises(ExceedsMaximum) as caught:
            plan(stomatorg, self.CART, 31, self.BUCKETS)
        assert (caught.value.requested, caught.value.maximum) == (31, 30)
        assert caught.value.metadata() == {"requested": "31", "maximum": "30"}

    def test_exceeds_a_maximum_set_by_the_balance(self, stomatorg: Program) -> None:
        buckets = [Bucket(1, "loyalty", 7, LONG_AGO, None, 1)]
        with pytest.raises(ExceedsMaximum) as caught:
            plan(stomatorg, self.CART, 8, buckets)
        assert (caught.value.requested, caught.value.maximum) == (8, 7)


class TestPromoConflict:
    CART = Cart(
        "RUB", (CartLine("a", 1, 100_000, promo_discount_minor=5_000),), promo_code="SPRING"
    )
    BUCKETS: ClassVar[list[Bucket]] = [Bucket(1, "loyalty", 500, LONG_AGO, None, 1)]

    @pytest.mark.parametrize("asked", [10, 10_000])
    def test_exclusive_with_a_promo_code(self, stomatorg: Program, asked: int) -> None:
        # comes before EXCEEDS_MAXIMUM
        with pytest.raises(PromoConflict) as caught:
            plan(stomatorg, self.CART, asked, self.BUCKETS)
        assert caught.value.promo_code == "SPRING"
        assert caught.value.metadata() == {"promo_code": "SPRING"}

    def test_without_the_promo_code_it_applies(self, stomatorg: Program) -> None:
        result = plan(stomatorg, self.CART.without_promo(), 30, self.BUCKETS)
        # 100 000 × 3 % = 3 000 minor → 30
        assert result.maximum == 30

    def test_stack_has_no_conflict(self, denco: Program) -> None:
        # (100 000 − 5 000) × 50 % = 47 500 minor → 475
        result = plan(denco, self.CART, 475, self.BUCKETS)
        assert result.points == 475


def test_currency_mismatch(denco: Program) -> None:
    with pytest.raises(CurrencyMismatch) as caught:
        check_currency(denco, Cart("EUR", (CartLine("a", 1, 100),)))
    assert caught.value.metadata() == {"expected": "RUB", "got": "EUR"}
    check_currency(denco, Cart("RUB", (CartLine("a", 1, 100),)))
