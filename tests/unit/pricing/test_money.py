"""pricing.money: basis points, whole points, cumulative shares, the largest-remainder split."""

import pytest

from loyalty.v1 import cart_pb2
from pricing.money import (
    INT64_MAX,
    apply_bp,
    cap_points,
    cumulative_share,
    points_in,
    split_largest_remainder,
)


def test_int64_max_is_the_largest_amount_the_api_carries() -> None:
    # The cart's amounts travel as protobuf int64: the bound validation holds them to must be
    # exactly what the wire accepts, no more and no less.
    line = cart_pb2.CartLine(unit_price_minor=INT64_MAX)
    assert line.unit_price_minor == 2**63 - 1
    with pytest.raises(ValueError, match="out of range"):
        cart_pb2.CartLine(unit_price_minor=INT64_MAX + 1)


@pytest.mark.parametrize(
    ("amount", "bp", "expected"),
    [
        (450, 9999, 449),  # 450 × 9999 / 10000 = 449.955 → 449
        (999, 300, 29),  # 999 × 300 / 10000 = 29.97 → 29
        (100_000, 300, 3000),  # exact: 3000
        (100_000, 10_000, 100_000),  # 100 % is the whole
        (12_345, 0, 0),  # 0 % is nothing
        (1, 9999, 0),  # 0.9999 → 0
    ],
)
def test_apply_bp_rounds_down(amount: int, bp: int, expected: int) -> None:
    assert apply_bp(amount, bp) == expected


@pytest.mark.parametrize(
    ("minor", "expected"),
    [(0, 0), (99, 0), (100, 1), (199, 1), (150, 1), (449, 4), (100_000, 1000)],
)
def test_points_in_rounds_down(minor: int, expected: int) -> None:
    # whole points of 100 minor each: floor(minor / 100)
    assert points_in(minor, point_value_minor=100) == expected


@pytest.mark.parametrize(
    ("base", "bp", "expected"),
    [
        (450, 9999, 4),  # 450 × 9999 / 10000 = 449.955 → 449 minor → 4 points
        (450, 5000, 2),  # 450 × 5000 / 10000 = 225 minor → 2 points
        (100_000, 300, 30),  # 3 % of 1000 RUB = 3000 minor → 30 points
        (3_333, 300, 0),  # 99.99 minor → 99 minor → 0 points
        (100_000, 9999, 999),  # 99 990 minor → 999 points
    ],
)
def test_cap_points(base: int, bp: int, expected: int) -> None:
    assert cap_points(base, cap_bp=bp, point_value_minor=100) == expected


def test_cap_points_with_another_point_value() -> None:
    # 10 000 minor × 5000 / 10000 = 5000 minor; at 30 minor a point: 5000 / 30 = 166.67 → 166
    assert cap_points(10_000, cap_bp=5000, point_value_minor=30) == 166


def test_cumulative_share() -> None:
    # 10 points over 3 units: floor(10 × K / 3) for K = 0, 1, 2, 3 → 0, 3, 6, 10
    assert [cumulative_share(10, done=k, of=3) for k in range(4)] == [0, 3, 6, 10]


class TestSplitLargestRemainder:
    def test_exact_proportions(self) -> None:
        # 10 × (1, 2, 3, 4) / 10 = 1, 2, 3, 4 exactly
        assert split_largest_remainder(10, [1, 2, 3, 4]) == [1, 2, 3, 4]

    def test_tie_goes_to_the_earlier_part(self) -> None:
        # 10 / 3 = 3.33 each → 3, 3, 3 (9); one left, equal remainders → the first
        assert split_largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
        # 7 / 3 = 2.33 each → 2, 2, 2; one left → the first
        assert split_largest_remainder(7, [1, 1, 1]) == [3, 2, 2]
        # 100 / 3 = 33.33 → 33 × 3 = 99; one left → the first
        assert split_largest_remainder(100, [5, 5, 5]) == [34, 33, 33]

    def test_largest_remainder_wins(self) -> None:
        # 2 × (1, 2, 3) / 6 = 0.33, 0.67, 1.0 → 0, 0, 1 (1); one left → the 0.67 part
        assert split_largest_remainder(2, [1, 2, 3]) == [0, 1, 1]
        # 5 × (3, 3, 4) / 10 = 1.5, 1.5, 2.0 → 1, 1, 2 (4); remainders .5, .5, 0 → the first .5
        assert split_largest_remainder(5, [3, 3, 4]) == [2, 1, 2]

    def test_zero_total_and_zero_weights(self) -> None:
        assert split_largest_remainder(0, [1, 2, 3]) == [0, 0, 0]
        assert split_largest_remainder(0, []) == []
        # a part of weight 0 takes nothing: 5 over (1, 1) = 2.5, 2.5 → 2, 2; one left → first
        assert split_largest_remainder(5, [0, 1, 1]) == [0, 3, 2]

    def test_capacity_is_respected_and_the_excess_split_again(self) -> None:
        # 8 × (1000, 1) / 1001 = 7.99, 0.008 → 7, 0; one left → part 0 = 8 > capacity 5:
        # part 0 keeps 5, the excess 3 goes to part 1 (room 10) → 5, 3
        assert split_largest_remainder(8, [1000, 1], [5, 10]) == [5, 3]

    def test_excess_split_again_in_proportion_ties_to_the_earlier(self) -> None:
        # 10 × (6, 2, 2) / 10 = 6, 2, 2; part 0 capped at 3 → excess 3
        # 3 over (2, 2) = 1.5, 1.5 → 1, 1; one left, tie → part 1: 2, 1 → 3, 2+2, 2+1
        assert split_largest_remainder(10, [6, 2, 2], [3, 10, 10]) == [3, 4, 3]

    def test_full_parts_close(self) -> None:
        # 12 × (5, 4, 1) / 10 = 6, 4.8, 1.2 → 6, 4, 1 (11); one left → the .8 → 6, 5, 1
        # part 0 capped at 4 (excess 2), part 1 is exactly full at 5 → 2 go to part 2: 1 + 2
        assert split_largest_remainder(12, [5, 4, 1], [4, 5, 100]) == [4, 5, 3]

    def test_capacity_zero_takes_nothing(self) -> None:
        # 3 over (150, 150, 150, 50) with capacities (1, 1, 1, 0): the 0.50 RUB part has no room
        assert split_largest_remainder(3, [150, 150, 150, 50], [1, 1, 1, 0]) == [1, 1, 1, 0]

    def test_total_above_the_capacities_is_an_error(self) -> None:
        # capacities 1 + 1 + 1 = 3 < 4
        with pytest.raises(ValueError, match="exceeds the capacities"):
            split_largest_remainder(4, [150, 150, 150], [1, 1, 1])

    @pytest.mark.parametrize(
        ("total", "weights", "capacities", "message"),
        [
            (-1, [1], None, "total must be >= 0"),
            (1, [1, -1], None, "weights must be >= 0"),
            (1, [1, 1], [1], "one capacity per weight"),
            (1, [0, 0], None, "no part with weight"),
            (1, [], None, "no part with weight"),
        ],
    )
    def test_bad_arguments(
        self, total: int, weights: list[int], capacities: list[int] | None, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            split_largest_remainder(total, weights, capacities)
