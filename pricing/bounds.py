"""The bounds of docs/rules.md §3 that keep every later computation inside its types.

Instants: a caller's timestamp (`as_of`, `delivered_at`, `available_at`,
`expires_at`) lies in [1970-01-01, 9000-01-01). Every date the service derives
from one adds at most a program's delays, each at most `MAX_PROGRAM_DAYS`, or a
hold of at most 30 days:

    latest derived instant < 9000-01-01 + accrual delay + expiry + 30 days
                           ≤ 9000-01-01 + 36,500 + 36,500 + 30 days   (73,030 days ≈ 199.95 years)
                           < 9200-01-01,

far inside `datetime`'s 9999-12-31 (and the tier window looks back at most
36,500 + 2 days from 1970-01-01: the year 1870, far above year 1). So no
accepted input can overflow a date later, in any time zone.

Amounts: a cart's total is at most 10^15 minor (pricing/cart.py), so what one order
earns is at most 10^15 × 100 % / 1 minor per point = 10^15 points; a grant is at
most 10^12 points. Sums across calls (balances, a tier's qualifying spend) are Python
integers, exact; the API's int64 fields get them through `clamp_int64`.
"""

from datetime import UTC, datetime

from pricing.money import INT64_MAX

EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
END_OF_INSTANTS = datetime(9000, 1, 1, tzinfo=UTC)  # the first instant not accepted
MAX_PROGRAM_DAYS = 36_500  # any one of a program's delays: accrual, expiry, tier window
MAX_GRANT_POINTS = 10**12
INT64_MIN = -(2**63)


def instant_in_bounds(value: datetime) -> bool:
    return EARLIEST_INSTANT <= value < END_OF_INSTANTS


def clamp_int64(value: int) -> int:
    """A sum for an int64 field: exact when it fits, else the nearest int64 (docs/rules.md §7)."""
    return max(INT64_MIN, min(value, INT64_MAX))
