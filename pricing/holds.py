"""Holds (two-phase redemption): points out of the balance, not yet spent (docs/rules.md §8).

A hold lapses exactly at its deadline; every read sees that at once, and
the next write on the account (or the expiry job) writes it down.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pricing.buckets import Bucket, Debit, DebitRecord, pay_debt_from_restore


@dataclass(frozen=True)
class Hold:
    redemption_id: str
    order_id: str
    points: int
    deadline: datetime
    debits: tuple[DebitRecord, ...]

    def lapsed_at(self, now: datetime) -> bool:
        return self.deadline <= now


@dataclass(frozen=True)
class Release:
    """Where a released hold's points go: debt, buckets, or (expired meanwhile) nowhere."""

    returned: tuple[Debit, ...]  # every outstanding point, per bucket it came from
    to_buckets: tuple[Debit, ...]
    stay_expired: tuple[Debit, ...]  # their bucket expired while held: they stay expired
    to_debt: int = 0  # what paid outstanding debt instead of going back (docs/rules.md §5)

    @property
    def points(self) -> int:
        return sum(d.points for d in self.returned)


def release(hold: Hold, *, at: datetime, debt: int = 0) -> Release:
    """Every outstanding point back, as of the instant `at`: debt first, then its bucket."""
    back = [
        Debit(d.bucket_id, d.outstanding)
        for d in sorted(hold.debits, key=lambda d: d.bucket_id)
        if d.outstanding
    ]
    expired = {d.bucket_id for d in hold.debits if d.expires_at is not None and d.expires_at <= at}
    live = [d for d in back if d.bucket_id not in expired]
    to_buckets, to_debt = pay_debt_from_restore(live, debt=debt)
    return Release(
        returned=tuple(back),
        to_buckets=tuple(to_buckets),
        stay_expired=tuple(d for d in back if d.bucket_id in expired),
        to_debt=to_debt,
    )


def lapse_order(holds: Iterable[Hold]) -> list[Hold]:
    """Holds in the order they lapse: by deadline, ties by id."""
    return sorted(holds, key=lambda h: (h.deadline, h.redemption_id))


def with_lapsed_holds(
    buckets: Sequence[Bucket], holds: Iterable[Hold], *, now: datetime, debt: int = 0
) -> tuple[list[Bucket], int]:
    """The buckets and debt once every hold lapsed by `now` has given its points back."""
    back: dict[int, int] = {}
    for hold in lapse_order(holds):
        if hold.lapsed_at(now):
            released = release(hold, at=hold.deadline, debt=debt)
            debt -= released.to_debt
            for debit in released.to_buckets:
                back[debit.bucket_id] = back.get(debit.bucket_id, 0) + debit.points
    buckets = [
        replace(b, remaining=b.remaining + back[b.bucket_id]) if b.bucket_id in back else b
        for b in buckets
    ]
    return buckets, debt
