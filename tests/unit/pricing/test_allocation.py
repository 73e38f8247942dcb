"""pricing.allocation: points over lines by net, each line within floor(net / point value)."""

import pytest

from pricing.allocation import LineAllocation, allocate, line_capacity
from pricing.cart import CartLine


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (CartLine("a", 1, 150), 1),  # 150 / 100 = 1.5 → 1
        (CartLine("a", 3, 150), 4),  # 450 / 100 = 4.5 → 4
        (CartLine("a", 1, 99), 0),  # 0.99 → 0
        (CartLine("a", 2, 1_000, discount_minor=300, promo_discount_minor=250), 14),  # 1450 → 14
        (CartLine("a", 1, 0), 0),
    ],
)
def test_line_capacity(line: CartLine, expected: int) -> None:
    assert line_capacity(line, point_value_minor=100) == expected


def test_three_lines_at_1_50() -> None:
    lines = [CartLine(f"l{i}", 1, 150) for i in range(3)]
    # 3 over equal nets: 1 each; capacity 1 each
    assert allocate(3, lines, point_value_minor=100) == tuple(
        LineAllocation(f"l{i}", 1, 1, 100) for i in range(3)
    )
    with pytest.raises(ValueError, match="exceeds the capacities"):
        allocate(4, lines, point_value_minor=100)  # 4 > 1 + 1 + 1


def test_a_small_line_spills_over() -> None:
    lines = [CartLine("big", 1, 10_000), CartLine("small", 3, 50)]
    # nets 10 000 and 150 (capacity 1): 100 × 150 / 10 150 = 1.48 → 1, 98.52 → 98; 1 left,
    # remainders .52 > .48 → big 99; small 1 (its capacity)
    assert [a.points for a in allocate(100, lines, point_value_minor=100)] == [99, 1]
    # 101: quotas 99.51, 1.49 → 99, 1; 1 left, .51 > .49 → big 100, small 1
    assert [a.points for a in allocate(101, lines, point_value_minor=100)] == [100, 1]


def test_capacity_spill_over() -> None:
    lines = [CartLine("a", 1, 1_000), CartLine("b", 1, 199), CartLine("c", 1, 801)]
    # nets 1000, 199, 801 (capacities 10, 1, 8); 19 points:
    # quotas 19 × (1000, 199, 801) / 2000 = 9.5, 1.89, 7.61 → 9, 1, 7 (17); 2 left,
    # remainders .89 (b), .61 (c), .5 (a) → 9, 2, 8: b over its capacity 1 → 1 spills;
    # c is full at its capacity 8, so only a has room → a 10; result 10, 1, 8
    assert [a.points for a in allocate(19, lines, point_value_minor=100)] == [10, 1, 8]


def test_discount_in_money() -> None:
    (only,) = allocate(7, [CartLine("a", 1, 5_000)], point_value_minor=30)
    # 7 points × 30 minor = 210
    assert only == LineAllocation("a", 1, 7, 210)
