"""pricing.bounds: the instants a caller may send; int64 fields for sums (docs/rules.md §3, §7)."""

from datetime import UTC, datetime, timedelta

import pytest

from pricing.bounds import clamp_int64, instant_in_bounds

TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("instant", "accepted"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), True),  # the first instant accepted
        (datetime(1970, 1, 1, tzinfo=UTC) - TICK, False),
        (datetime(9000, 1, 1, tzinfo=UTC) - TICK, True),  # the last instant accepted
        (datetime(9000, 1, 1, tzinfo=UTC), False),  # the first one refused
        (datetime(2026, 12, 1, 3, 45, tzinfo=UTC), True),
    ],
)
def test_instants_lie_from_1970_to_before_9000(instant: datetime, accepted: bool) -> None:
    assert instant_in_bounds(instant) is accepted


@pytest.mark.parametrize(
    ("value", "clamped"),
    [
        (0, 0),
        (-5, -5),
        (2**63 - 1, 2**63 - 1),  # exact when it fits
        (-(2**63), -(2**63)),
        (2**63, 2**63 - 1),  # one above int64: the largest int64
        (10**30, 2**63 - 1),
        (-(2**63) - 1, -(2**63)),  # one below: the smallest
        (-(10**30), -(2**63)),
    ],
)
def test_clamp_int64_is_exact_inside_and_the_nearest_bound_beyond(value: int, clamped: int) -> None:
    assert clamp_int64(value) == clamped
