"""Holds (two-phase redemption): points out of the balance, not yet spent (SPEC §8).

A hold lapses exactly at its deadline; every read sees that at once, and
the next write on the account (or the expiry job) writes it down.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pricing.buckets import Bucket, Debit, DebitRecord


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
    """Where a released hold's points go: back into buckets, or (expired meanwhile) nowhere."""

    to_buckets: tuple[Debit, ...]
    stay_expired: tuple[Debit, ...]  # their bucket expired while held: they stay expired

    @property
    def points(self) -> int:
        return sum(d.points for d in self.to_buckets) + sum(d.points for d in self.stay_expired)


def release(hold: Hold, *, at: datetime) -> Release:
    """Every outstanding point back to the bucket it came from, as of the instant `at`."""
    back = [Debit(d.bucket_id, d.outstanding) for d in hold.debits if d.outstanding]
    expired = {d.bucket_id for d in hold.debits if d.expires_at is not None and d.expires_at <= at}
    return Release(
        to_buckets=tuple(d for d in back if d.bucket_id not in expired),
        stay_expired=tuple(d for d in back if d.bucket_id in expired),
    )


def with_lapsed_holds(
    buckets: Sequence[Bucket], holds: Iterable[Hold], *, now: datetime
) -> list[Bucket]:
    """The buckets as they stand once every hold lapsed by `now` has given its points back."""
    back: dict[int, int] = {}
    for hold in holds:
        if hold.lapsed_at(now):
            for debit in release(hold, at=hold.deadline).to_buckets:
                back[debit.bucket_id] = back.get(debit.bucket_id, 0) + debit.points
    return [
        replace(b, remaining=b.remaining + back[b.bucket_id]) if b.bucket_id in back else b
        for b in buckets
    ]
