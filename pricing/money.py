"""Minor units, basis points, and the one largest-remainder split."""

from collections.abc import Sequence

INT64_MAX = 2**63 - 1
BP_WHOLE = 10_000  # basis points in 100 %


def apply_bp(amount: int, bp: int) -> int:
    """`amount × bp / 10000`, rounded down (docs/rules.md §2: every rounding goes down)."""
    return amount * bp // BP_WHOLE


def points_in(amount_minor: int, *, point_value_minor: int) -> int:
    """Whole points that fit in `amount_minor`, rounded down."""
    return amount_minor // point_value_minor


def cap_points(base_minor: int, *, cap_bp: int, point_value_minor: int) -> int:
    """A percentage cap of a money base, in whole points: floor(floor(base × bp) / value)."""
    return points_in(apply_bp(base_minor, cap_bp), point_value_minor=point_value_minor)


def cumulative_share(total: int, *, done: int, of: int) -> int:
    """`floor(total × done / of)`: what `done` of `of` units are owed of `total`.

    Used for partial returns: the differences of successive cumulative shares
    add up to exactly `total` once every unit is done.
    """
    return total * done // of


def split_largest_remainder(
    total: int,
    weights: Sequence[int],
    capacities: Sequence[int] | None = None,
) -> list[int]:
    """Split `total` over parts in proportion to `weights`, in whole units.

    Largest-remainder method; equal remainders go to the earlier part. With
    `capacities`, no part gets more than its capacity: what a full part cannot
    take is split again, the same way, over the parts that still have room.
    The parts always add up to `total`.
    """
    count = len(weights)
    if total < 0:
        raise ValueError("total must be >= 0")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be >= 0")
    room: list[int | None] = list(capacities) if capacities is not None else [None] * count
    if len(room) != count:
        raise ValueError("one capacity per weight")
    if capacities is not None and total > sum(capacities):
        raise ValueError(f"total {total} exceeds the capacities {sum(capacities)}")

    parts = [0] * count
    remaining = total
    open_parts = [i for i in range(count) if weights[i] > 0 and room[i] != 0]
    while remaining > 0:
        weight_sum = sum(weights[i] for i in open_parts)
        if weight_sum == 0:
            raise ValueError("no part with weight and room left to take the rest")
        shares = {i: remaining * weights[i] // weight_sum for i in open_parts}
        leftover = remaining - sum(shares.values())
        by_remainder = sorted(open_parts, key=lambda i: (-(remaining * weights[i] % weight_sum), i))
        for i in by_remainder[:leftover]:
            shares[i] += 1
        remaining = 0
        still_open = []
        for i in open_parts:
            share = shares[i]
            limit = room[i]
            if limit is not None and share >= limit:
                remaining += share - limit
                share = limit
            parts[i] += share
            if limit is not None:
                room[i] = limit - share
            if room[i] != 0:
                still_open.append(i)
        open_parts = still_open
    return parts
