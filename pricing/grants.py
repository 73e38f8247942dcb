"""GrantPoints (docs/rules.md §5): a grant's window, and how its points meet the account's debt."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from pricing.buckets import pay_debt_first
from pricing.errors import InvalidArgument, Violation


@dataclass(frozen=True)
class GrantWindow:
    available_at: datetime
    expires_at: datetime | None  # None: never expires


def grant_window(
    *,
    available_at: datetime | None,
    expires_at: datetime | None,
    expiry_days: int | None,
    now: datetime,
) -> GrantWindow:
    """When the granted points are spendable; a window that could never be spent is bad input.

    Without `available_at` the points are spendable at `now`; without `expires_at` they
    expire the source's `expiry_days` after `available_at` (never, without expiry days).
    The field named is the one that makes the window dead: `expires_at` when given,
    else `available_at` (or `as_of`, when the call's instant is where it starts).
    Dates cannot overflow: instants and expiry days are bounded (pricing/bounds.py).
    """
    check_window(available_at=available_at, expires_at=expires_at)
    start = available_at or now
    end = expires_at
    if end is None and expiry_days is not None:
        end = start + timedelta(days=expiry_days)
    if end is None:
        return GrantWindow(start, None)
    field = "expires_at" if expires_at is not None else "available_at"
    if end <= now:
        raise InvalidArgument(
            [Violation(field, f"the points would expire at {end:%Y-%m-%dT%H:%M:%SZ}, at or "
                       "before the call's instant: they could never be spent")]
        )  # fmt: skip
    return GrantWindow(start, end)


def check_window(*, available_at: datetime | None, expires_at: datetime | None) -> None:
    """What the request says of itself, whatever the call's instant."""
    if available_at is not None and expires_at is not None and expires_at <= available_at:
        raise InvalidArgument([Violation("expires_at", "must be after available_at")])


@dataclass(frozen=True)
class GrantCredit:
    """What a grant does at the call: the debt it pays now, and its bucket."""

    to_debt: int  # paid at the call (a grant spendable at once)
    remaining: int  # what its bucket holds
    settled: bool  # False: it pays debt when it matures, like an accrual
    spendable_now: int  # what it adds to the spendable balance at the call


def grant_credit(*, points: int, debt: int, window: GrantWindow, now: datetime) -> GrantCredit:
    """Every credit pays debt first when it becomes spendable (docs/rules.md §5): at the call for a
    grant spendable at once, at `available_at` for one that matures later."""
    if window.available_at > now:
        return GrantCredit(to_debt=0, remaining=points, settled=False, spendable_now=0)
    payment = pay_debt_first(credit=points, debt=debt)
    return GrantCredit(
        to_debt=payment.to_debt,
        remaining=payment.to_bucket,
        settled=True,
        spendable_now=payment.to_bucket,
    )
