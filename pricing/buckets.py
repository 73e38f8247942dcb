"""Buckets of points: when they may be spent, and which are spent or refilled first."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True)
class Bucket:
    """Points from one credit: spendable from `available_at` until `expires_at` (exclusive)."""

    bucket_id: int
    source: str
    remaining: int
    available_at: datetime
    expires_at: datetime | None  # None: never expires
    seq: int  # creation order, breaks ties between equal expiries
    settled: bool = True  # False: a credit that pays debt when it matures (an accrual)
    expired_points: int = 0  # written off as EXPIRY (by the job, or returned after expiry)

    def spendable_at(self, now: datetime) -> bool:
        return self.available_at <= now and (self.expires_at is None or now < self.expires_at)

    def pending_at(self, now: datetime) -> bool:
        return now < self.available_at

    def expired_at(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Debit:
    """Points moved out of (spend, clawback) or back into (restore) one bucket."""

    bucket_id: int
    points: int


@dataclass(frozen=True)
class Expired:
    """Points of a bucket written off because its window closed at `expires_at`."""

    bucket_id: int
    source: str
    points: int
    expires_at: datetime


@dataclass(frozen=True)
class DebitRecord:
    """What an order took from a bucket and how much of it has come back."""

    bucket_id: int
    taken: int
    returned: int
    expires_at: datetime | None
    seq: int

    @property
    def outstanding(self) -> int:
        return self.taken - self.returned


def first_expiring_first(bucket: Bucket | DebitRecord) -> tuple[bool, datetime | None, int]:
    """Sort key: earliest expiry first, never-expiring last, ties by creation order."""
    return (bucket.expires_at is None, bucket.expires_at, bucket.seq)


def before_written_expiry(buckets: Iterable[Bucket], now: datetime) -> list[Bucket]:
    """The buckets as they stood at `now` before the expiry written down since (docs/rules.md §7).

    Points are written off only once their bucket has expired; a bucket that has not
    expired by `now` still held them then. A read at an `as_of` earlier than what the
    expiry job already wrote sees that earlier moment.
    """
    return [
        replace(b, remaining=b.remaining + b.expired_points, expired_points=0)
        if b.expired_points and not b.expired_at(now)
        else b
        for b in buckets
    ]


def spendable(buckets: Iterable[Bucket], now: datetime) -> list[Bucket]:
    """The buckets spendable at `now` with points left, first-expiring first."""
    live = [b for b in buckets if b.remaining > 0 and b.spendable_at(now)]
    return sorted(live, key=first_expiring_first)


def balance_by_source(buckets: Iterable[Bucket], now: datetime) -> dict[str, int]:
    balances: dict[str, int] = {}
    for bucket in spendable(buckets, now):
        balances[bucket.source] = balances.get(bucket.source, 0) + bucket.remaining
    return balances


def plan_spend(
    buckets: Iterable[Bucket],
    *,
    points: int,
    now: datetime,
    source_limits: Mapping[str, int | None],
) -> list[Debit]:
    """Take `points` from spendable buckets, first-expiring first, each source within its limit.

    Raises ValueError when the buckets cannot cover `points`; callers spend at
    most what the caps solver allowed, so that is a bug, not a user error.
    """
    left = points
    taken_by_source: dict[str, int] = {}
    debits = []
    for bucket in spendable(buckets, now):
        if left == 0:
            break
        limit = source_limits.get(bucket.source)
        room = bucket.remaining if limit is None else limit - taken_by_source.get(bucket.source, 0)
        take = min(left, bucket.remaining, room)
        if take > 0:
            debits.append(Debit(bucket.bucket_id, take))
            taken_by_source[bucket.source] = taken_by_source.get(bucket.source, 0) + take
            left -= take
    if left:
        raise ValueError(f"buckets cannot cover {points} points ({left} short)")
    return debits


def plan_restore(records: Sequence[DebitRecord], *, points: int) -> list[Debit]:
    """Give `points` back to the buckets they came from, latest expiry first (docs/rules.md §6)."""
    left = points
    restores = []
    for record in sorted(records, key=first_expiring_first, reverse=True):
        if left == 0:
            break
        give = min(left, record.outstanding)
        if give > 0:
            restores.append(Debit(record.bucket_id, give))
            left -= give
    if left:
        raise ValueError(f"debits cannot take back {points} points ({left} too many)")
    return restores


@dataclass(frozen=True)
class ClawbackPlan:
    """Points taken back from buckets (own bucket first), and what becomes debt."""

    debits: list[Debit]
    debt: int
    written_off: int = 0  # taken from the own bucket's points the expiry job wrote off

    @property
    def clawed_back(self) -> int:
        return sum(d.points for d in self.debits) + self.written_off


def plan_clawback(
    buckets: Iterable[Bucket],
    *,
    points: int,
    own_bucket_id: int | None,
    now: datetime,
    own_written_off: int = 0,
) -> ClawbackPlan:
    """Take back `points` an order earned (docs/rules.md §6).

    First from the accrual's own bucket, pending, spendable or expired: what
    is still in it was never spent, nor were the points that expired there
    (`own_written_off`: those the expiry job already wrote off and no
    clawback took since). Only what was spent is taken from other spendable
    buckets, first-expiring first; what is still missing is debt.
    """
    everything = list(buckets)
    left = points
    debits = []
    for bucket in everything:
        if bucket.bucket_id == own_bucket_id:
            take = min(left, bucket.remaining)
            if take > 0:
                debits.append(Debit(bucket.bucket_id, take))
                left -= take
    written_off = min(left, own_written_off)
    left -= written_off
    for bucket in spendable((b for b in everything if b.bucket_id != own_bucket_id), now):
        if left == 0:
            break
        take = min(left, bucket.remaining)
        debits.append(Debit(bucket.bucket_id, take))
        left -= take
    return ClawbackPlan(debits=debits, debt=left, written_off=written_off)


@dataclass(frozen=True)
class DebtPayment:
    """A credit of `points` split into what pays debt and what stays in the bucket."""

    to_debt: int
    to_bucket: int


def pay_debt_first(*, credit: int, debt: int) -> DebtPayment:
    """Every credit pays outstanding debt first, whatever its source (docs/rules.md §5)."""
    to_debt = min(credit, debt)
    return DebtPayment(to_debt=to_debt, to_bucket=credit - to_debt)


@dataclass(frozen=True)
class Settlement:
    """Matured credits applied against debt: what each paid, and the debt left."""

    payments: tuple[Debit, ...]  # points moved from a bucket to the debt
    settled: tuple[int, ...]  # buckets now settled, whether they paid anything or not
    debt: int

    def apply(self, buckets: Iterable[Bucket]) -> list[Bucket]:
        """The buckets as they are once this settlement is written down."""
        paid = {p.bucket_id: p.points for p in self.payments}
        done = set(self.settled)
        return [
            replace(b, remaining=b.remaining - paid.get(b.bucket_id, 0), settled=True)
            if b.bucket_id in done
            else b
            for b in buckets
        ]


def settle_matured(buckets: Iterable[Bucket], *, debt: int, now: datetime) -> Settlement:
    """Every credit pays debt first (docs/rules.md §5); an accrual pays when it matures.

    Unsettled buckets that have matured by `now` pay the debt in the order
    they matured. Every mutation settles first, so the debt they meet is the
    debt at their maturity; reads apply the same settlement without writing it.
    """
    matured = sorted(
        (b for b in buckets if not b.settled and b.available_at <= now),
        key=lambda b: (b.available_at, b.seq),
    )
    payments = []
    for bucket in matured:
        pay = min(bucket.remaining, debt)
        if pay:
            payments.append(Debit(bucket.bucket_id, pay))
            debt -= pay
    return Settlement(tuple(payments), tuple(b.bucket_id for b in matured), debt)


def pay_debt_from_restore(restores: Sequence[Debit], *, debt: int) -> tuple[list[Debit], int]:
    """Points coming back pay debt first (docs/rules.md §5); the rest go back into their buckets.

    Returns what each bucket still receives and how much paid the debt.
    """
    to_debt = min(debt, sum(r.points for r in restores))
    left = to_debt
    to_buckets = []
    for restore in restores:
        paid = min(left, restore.points)
        left -= paid
        if restore.points - paid:
            to_buckets.append(Debit(restore.bucket_id, restore.points - paid))
    return to_buckets, to_debt
