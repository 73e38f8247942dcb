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
    paid_debt: int = 0  # a lapse written down already: what its points paid of the debt

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


def before_written_lapses(
    buckets: Sequence[Bucket], holds: Iterable[Hold], *, debt: int
) -> tuple[list[Bucket], int, list[Hold]]:
    """The account before lapses that were written down but fall after the read's `now`.

    A read at an `as_of` before a hold's deadline sees the hold live (docs/rules.md §7: lapses are
    decided at each call's `as_of`, whatever the job already wrote). Its lapse gave each
    debit back: the part whose bucket had expired by the deadline stayed expired, the rest
    paid `paid_debt` of the debt first (in `release`'s order) and went to its bucket. This
    takes those points back out of their buckets, which must already be as they stood at
    `now` before any expiry written since (`before_written_expiry`): a bucket not expired
    at `now` then holds every point the lapse gave it, expired or not. Returns the
    buckets, the debt and the holds, live again.
    """
    take: dict[int, int] = {}
    live_again = []
    for hold in lapse_order(holds):
        back = sorted(
            (Debit(d.bucket_id, d.returned) for d in hold.debits), key=lambda d: d.bucket_id
        )
        expired_then = {
            d.bucket_id
            for d in hold.debits
            if d.expires_at is not None and d.expires_at <= hold.deadline
        }
        live = [d for d in back if d.bucket_id not in expired_then and d.points]
        to_buckets, _ = pay_debt_from_restore(live, debt=hold.paid_debt)
        stayed = [d for d in back if d.bucket_id in expired_then]
        for debit in [*to_buckets, *stayed]:
            take[debit.bucket_id] = take.get(debit.bucket_id, 0) + debit.points
        debt += hold.paid_debt
        debits = tuple(replace(d, returned=0) for d in hold.debits)
        live_again.append(replace(hold, debits=debits, paid_debt=0))
    # A later call (at a later `as_of`) may have spent what came back: never below zero.
    found = [
        replace(b, remaining=max(0, b.remaining - take[b.bucket_id])) if b.bucket_id in take else b
        for b in buckets
    ]
    return found, debt, live_again
