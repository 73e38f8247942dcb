"""Splitting a redemption's points over the cart's lines (docs/rules.md §4, "Allocation")."""

from collections.abc import Sequence
from dataclasses import dataclass

from pricing.cart import CartLine
from pricing.money import points_in, split_largest_remainder


@dataclass(frozen=True)
class LineAllocation:
    line_id: str
    quantity: int
    points: int
    discount_minor: int


def line_capacity(line: CartLine, *, point_value_minor: int) -> int:
    """The most points a line can take: its net in whole points, rounded down."""
    return points_in(max(line.net_minor, 0), point_value_minor=point_value_minor)


def allocate(
    points: int, lines: Sequence[CartLine], *, point_value_minor: int
) -> tuple[LineAllocation, ...]:
    """Split `points` over `lines` in proportion to their net, each within its capacity."""
    if points == 0:
        return tuple(LineAllocation(line.line_id, line.quantity, 0, 0) for line in lines)
    parts = split_largest_remainder(
        points,
        [line.net_minor for line in lines],
        [line_capacity(line, point_value_minor=point_value_minor) for line in lines],
    )
    return tuple(
        LineAllocation(line.line_id, line.quantity, part, part * point_value_minor)
        for line, part in zip(lines, parts, strict=True)
    )
