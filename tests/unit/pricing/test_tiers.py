"""pricing.tiers: rolling 365 days of Moscow days, effective the day after maturity."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pricing.program import Program
from pricing.tiers import QualifyingOrder, TierStatus, tier_status

MSK = ZoneInfo("Europe/Moscow")  # UTC+3 all year
MATURED = datetime(2026, 3, 10, 15, 0, tzinfo=MSK)
# three orders: 4 000 000 + 3 000 000 + 3 000 000 = 10 000 000 minor (100 000 RUB), exactly
# the regular tier's thresholds (≥ 3 orders, ≥ 100 000 RUB)
REGULAR_ORDERS = [
    QualifyingOrder(MATURED, 4_000_000),
    QualifyingOrder(MATURED, 3_000_000),
    QualifyingOrder(MATURED, 3_000_000),
]


def status(program: Program, orders: list[QualifyingOrder], now: datetime) -> TierStatus:
    return tier_status(program, orders, now=now)


class TestDayAfterMaturity:
    def test_same_day_still_the_old_tier(self, stomatorg: Program) -> None:
        # matured 03-10 15:00 MSK; 03-10 23:59 MSK is day D: not counted yet
        result = status(stomatorg, REGULAR_ORDERS, datetime(2026, 3, 10, 23, 59, tzinfo=MSK))
        assert result.tier.id == "base"
        assert (result.spend_minor, result.orders) == (0, 0)
        assert result.next_tier is not None and result.next_tier.id == "regular"
        assert (result.missing_spend_minor, result.missing_orders) == (10_000_000, 3)

    def test_the_instant_of_maturity_changes_nothing(self, stomatorg: Program) -> None:
        result = status(stomatorg, REGULAR_ORDERS, MATURED)
        assert result.tier.id == "base"

    def test_next_day_at_midnight_the_new_tier(self, stomatorg: Program) -> None:
        # 03-11 00:00 MSK is D+1
        result = status(stomatorg, REGULAR_ORDERS, datetime(2026, 3, 11, 0, 0, tzinfo=MSK))
        assert result.tier.id == "regular"
        assert (result.spend_minor, result.orders) == (10_000_000, 3)
        # partner: 50 000 000 − 10 000 000 = 40 000 000; 10 − 3 = 7 orders
        assert result.next_tier is not None and result.next_tier.id == "partner"
        assert (result.missing_spend_minor, result.missing_orders) == (40_000_000, 7)

    def test_moscow_midnight_is_21_00_utc(self, stomatorg: Program) -> None:
        # 03-10 20:59:59 UTC = 23:59:59 MSK (day D); 21:00 UTC = 03-11 00:00 MSK (D+1)
        before = status(stomatorg, REGULAR_ORDERS, datetime(2026, 3, 10, 20, 59, 59, tzinfo=UTC))
        after = status(stomatorg, REGULAR_ORDERS, datetime(2026, 3, 10, 21, 0, tzinfo=UTC))
        assert (before.tier.id, after.tier.id) == ("base", "regular")

    def test_maturity_day_is_a_moscow_day(self, stomatorg: Program) -> None:
        # matured 03-10 22:30 UTC = 03-11 01:30 MSK: D is 03-11 (the UTC date would say 03-10)
        late = datetime(2026, 3, 10, 22, 30, tzinfo=UTC)
        orders = [QualifyingOrder(late, 4_000_000), QualifyingOrder(late, 6_000_000)] * 2
        # 4 orders, 20 000 000 minor; still day D at 03-11 23:59 MSK
        on_d = status(stomatorg, orders, datetime(2026, 3, 11, 23, 59, tzinfo=MSK))
        next_day = status(stomatorg, orders, datetime(2026, 3, 12, 0, 0, tzinfo=MSK))
        assert (on_d.tier.id, next_day.tier.id) == ("base", "regular")

    def test_window_end(self, stomatorg: Program) -> None:
        # D = 2026-03-10; D + 365 = 2027-03-10 (no 29 February in between) still counts,
        # D + 366 = 2027-03-11 does not
        last = status(stomatorg, REGULAR_ORDERS, datetime(2027, 3, 10, 23, 59, tzinfo=MSK))
        gone = status(stomatorg, REGULAR_ORDERS, datetime(2027, 3, 11, 0, 0, tzinfo=MSK))
        assert (last.tier.id, last.orders) == ("regular", 3)
        assert (gone.tier.id, gone.orders) == ("base", 0)

    def test_window_end_across_a_leap_day(self, stomatorg: Program) -> None:
        # D = 2027-03-10; D + 365 = 2028-03-09 (2028-02-29 exists); D + 366 = 2028-03-10
        matured = datetime(2027, 3, 10, 15, 0, tzinfo=MSK)
        orders = [QualifyingOrder(matured, 5_000_000)] * 3
        last = status(stomatorg, orders, datetime(2028, 3, 9, 23, 59, tzinfo=MSK))
        gone = status(stomatorg, orders, datetime(2028, 3, 10, 0, 0, tzinfo=MSK))
        assert (last.tier.id, gone.tier.id) == ("regular", "base")

    def test_a_future_maturity_does_not_count(self, stomatorg: Program) -> None:
        result = status(stomatorg, REGULAR_ORDERS, datetime(2026, 3, 1, tzinfo=MSK))
        assert result.orders == 0


NOW = datetime(2026, 6, 1, 12, 0, tzinfo=MSK)


def orders(count: int, amount: int) -> list[QualifyingOrder]:
    return [QualifyingOrder(MATURED, amount)] * count


class TestThresholds:
    def test_no_history(self, stomatorg: Program) -> None:
        result = status(stomatorg, [], NOW)
        assert result.tier.id == "base"
        assert (result.missing_spend_minor, result.missing_orders) == (10_000_000, 3)

    def test_both_thresholds_needed(self, stomatorg: Program) -> None:
        # 20 orders of 1 RUB: enough orders, 2 000 minor of 10 000 000 → 9 998 000 missing
        many_small = status(stomatorg, orders(20, 100), NOW)
        assert many_small.tier.id == "base"
        assert (many_small.missing_spend_minor, many_small.missing_orders) == (9_998_000, 0)
        # 1 order of 2 000 000 RUB: spend enough for vip, but 1 order of 3 → 2 missing
        one_big = status(stomatorg, orders(1, 200_000_000), NOW)
        assert one_big.tier.id == "base"
        assert (one_big.missing_spend_minor, one_big.missing_orders) == (0, 2)

    def test_partner(self, stomatorg: Program) -> None:
        # 10 × 5 000 000 = 50 000 000: partner exactly; vip needs 100 000 000 − 50 000 000 and
        # 15 − 10 orders
        result = status(stomatorg, orders(10, 5_000_000), NOW)
        assert result.tier.id == "partner"
        assert result.next_tier is not None and result.next_tier.id == "vip"
        assert (result.missing_spend_minor, result.missing_orders) == (50_000_000, 5)

    def test_vip_has_no_next_tier(self, stomatorg: Program) -> None:
        # 15 × 7 000 000 = 105 000 000 ≥ 100 000 000, 15 orders
        result = status(stomatorg, orders(15, 7_000_000), NOW)
        assert result.tier.id == "vip"
        assert result.next_tier is None
        assert (result.missing_spend_minor, result.missing_orders) == (0, 0)

    @pytest.mark.parametrize(("count", "expected"), [(14, "partner"), (15, "vip")])
    def test_orders_threshold_inclusive(
        self, stomatorg: Program, count: int, expected: str
    ) -> None:
        assert status(stomatorg, orders(count, 10_000_000), NOW).tier.id == expected

    def test_a_fully_returned_order_no_longer_counts(self, stomatorg: Program) -> None:
        # the third order was returned in full: 2 orders, 7 000 000
        history = [*REGULAR_ORDERS[:2], QualifyingOrder(MATURED, 0)]
        result = status(stomatorg, history, NOW)
        assert (result.tier.id, result.orders, result.spend_minor) == ("base", 2, 7_000_000)

    def test_a_partly_returned_order_counts_what_is_left(self, stomatorg: Program) -> None:
        # 4 000 000 + 3 000 000 + (3 000 000 − 1 returned minor) = 9 999 999 → short
        history = [*REGULAR_ORDERS[:2], QualifyingOrder(MATURED, 2_999_999)]
        result = status(stomatorg, history, NOW)
        assert (result.tier.id, result.orders, result.spend_minor) == ("base", 3, 9_999_999)


def test_denco_has_one_tier(denco: Program) -> None:
    result = status(denco, orders(50, 100_000_000), NOW)
    assert result.tier.id == "standard"
    assert result.next_tier is None
    assert (result.missing_spend_minor, result.missing_orders) == (0, 0)
