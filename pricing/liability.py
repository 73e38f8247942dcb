"""The points liability: what a program owes at an instant, how it moved (docs/rules.md §8, §11).

Pure arithmetic over whole points. The stores hand in sums (many accounts at once)
or an account's buckets, holds and debt; everything time decides is decided at the
`now` given here, as the reads decide it (docs/rules.md §7): holds lapse at their deadline,
matured credits pay debt, points expire at their instant, written down or not.
"""

import enum
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pricing.bounds import clamp_int64
from pricing.buckets import Bucket, settle_matured
from pricing.errors import InvalidArgument, Violation
from pricing.holds import Hold, lapse_order, release, with_lapsed_holds

DAY = timedelta(days=1)


def money(points: int, *, point_value_minor: int) -> int:
    """Points as money in minor units: exact, then clamped (docs/rules.md §2: value × points)."""
    return clamp_int64(points * point_value_minor)


# --- Expiry bands --------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """Spendable points expiring in [from_days, to_days) days; to_days 0: no upper end."""

    from_days: int
    to_days: int
    never_expires: bool = False


# docs/rules.md §8: 0–30, 30–60, 60–90, 90–365, 365 on, and the never-expiring points.
BANDS: tuple[Band, ...] = (
    Band(0, 30),
    Band(30, 60),
    Band(60, 90),
    Band(90, 365),
    Band(365, 0),
    Band(0, 0, never_expires=True),
)
NEVER = len(BANDS) - 1


def band_edges(now: datetime) -> list[datetime]:
    """The instants where one band ends and the next begins: now + 30, 60, 90, 365 days."""
    return [now + band.to_days * DAY for band in BANDS if band.to_days]


def band_of(expires_at: datetime | None, *, now: datetime) -> int:
    """Index into BANDS of a spendable bucket's expiry (it expires after `now`)."""
    if expires_at is None:
        return NEVER
    return bisect_right(band_edges(now), expires_at)


# --- Running totals per hour ---------------------------------------------------------------

# Where every point of a totals cell counts at an instant, besides a band index.
PENDING = -1
GONE = -2  # expired: no longer owed (an EXPIRY, written down or due)
HOUR = timedelta(hours=1)


def expiry_hour_split(expires_hour: datetime, *, now: datetime) -> bool:
    """Whether the points expiring in [expires_hour, +1 h) may fall on both sides of `now`
    or of a band's edge, so they must be counted bucket by bucket."""
    end = expires_hour + HOUR
    return expires_hour <= now < end or any(expires_hour < e < end for e in band_edges(now))


def cell_at(
    available_hour: datetime, expires_hour: datetime | None, *, now: datetime
) -> int | None:
    """Where every point of the buckets becoming spendable in [available_hour, +1 h) and
    expiring in [expires_hour, +1 h) (None: never) counts at `now`: GONE, PENDING or the
    index into BANDS; None when they may fall on both sides of `now` or of an edge."""
    if expires_hour is not None:
        if expiry_hour_split(expires_hour, now=now):
            return None
        if expires_hour + HOUR <= now:
            return GONE
    if available_hour > now:
        return PENDING
    if available_hour + HOUR > now:
        return None
    return band_of(expires_hour, now=now)


# --- The liability at an instant -----------------------------------------------------------


@dataclass(frozen=True)
class Liability:
    """Figures in points; `customers` counts accounts holding spendable, pending or held points."""

    spendable: int = 0
    pending: int = 0
    held: int = 0
    debt: int = 0
    by_source: Mapping[str, int] = field(default_factory=dict)
    bands: tuple[int, ...] = (0,) * len(BANDS)
    customers: int = 0
    customers_in_debt: int = 0

    def plus(self, other: "Liability", sign: int = 1) -> "Liability":
        sources = dict(self.by_source)
        for source, points in other.by_source.items():
            sources[source] = sources.get(source, 0) + sign * points
        return Liability(
            spendable=self.spendable + sign * other.spendable,
            pending=self.pending + sign * other.pending,
            held=self.held + sign * other.held,
            debt=self.debt + sign * other.debt,
            by_source={s: p for s, p in sorted(sources.items()) if p},
            bands=tuple(a + sign * b for a, b in zip(self.bands, other.bands, strict=True)),
            customers=self.customers + sign * other.customers,
            customers_in_debt=self.customers_in_debt + sign * other.customers_in_debt,
        )

    def minus(self, other: "Liability") -> "Liability":
        return self.plus(other, sign=-1)


def account_liability(
    buckets: Iterable[Bucket], holds: Iterable[Hold], *, debt: int, now: datetime
) -> Liability:
    """One account's figures from its buckets and holds taken as they are (nothing applied).

    A hold counts as held while its deadline is after `now`.
    """
    spendable = pending = 0
    sources: dict[str, int] = {}
    bands = [0] * len(BANDS)
    for bucket in buckets:
        if bucket.remaining <= 0:
            continue
        if bucket.pending_at(now):
            pending += bucket.remaining
        elif bucket.spendable_at(now):
            spendable += bucket.remaining
            sources[bucket.source] = sources.get(bucket.source, 0) + bucket.remaining
            bands[band_of(bucket.expires_at, now=now)] += bucket.remaining
    held = sum(hold.points for hold in holds if not hold.lapsed_at(now))
    return Liability(
        spendable=spendable,
        pending=pending,
        held=held,
        debt=debt,
        by_source=sources,
        bands=tuple(bands),
        customers=1 if spendable or pending or held else 0,
        customers_in_debt=1 if debt else 0,
    )


@dataclass(frozen=True)
class AccountAsRead:
    """An account as a read at `now` sees it: lapsed holds given back, matured credits settled."""

    buckets: list[Bucket]
    holds: list[Hold]  # every hold, lapsed ones included (they are not held at `now`)
    debt: int
    now: datetime

    def liability(self) -> Liability:
        return account_liability(self.buckets, self.holds, debt=self.debt, now=self.now)


def as_read_at(
    buckets: Sequence[Bucket], holds: Sequence[Hold], *, debt: int, now: datetime
) -> AccountAsRead:
    """What docs/rules.md §7 has every read decide at its own instant, whether or not a job ran.

    The same order as a write takes under the account lock: lapses first, then
    matured credits pay what is still owed.
    """
    lapsed = [hold for hold in holds if hold.lapsed_at(now)]
    after_lapses, owed = with_lapsed_holds(buckets, lapsed, now=now, debt=debt)
    settlement = settle_matured(after_lapses, debt=owed, now=now)
    return AccountAsRead(settlement.apply(after_lapses), list(holds), settlement.debt, now)


# --- The ledger completed to an instant ----------------------------------------------------


class EntryKind(enum.StrEnum):
    """The §7 ledger kinds."""

    GRANT = "GRANT"
    ACCRUAL = "ACCRUAL"
    REDEMPTION = "REDEMPTION"
    HOLD = "HOLD"
    RELEASE = "RELEASE"
    REVERSAL = "REVERSAL"
    CLAWBACK = "CLAWBACK"
    DEBT = "DEBT"
    EXPIRY = "EXPIRY"


@dataclass(frozen=True)
class DueEntry:
    """A ledger entry a read at `now` takes into account that no job has written yet."""

    kind: EntryKind
    source: str
    points: int  # signed, as the entry will be written
    effective_at: datetime
    available_at: datetime  # of the bucket it moves: its cohort


def due_entries(
    buckets: Sequence[Bucket], holds: Sequence[Hold], *, debt: int, now: datetime
) -> list[DueEntry]:
    """The entries the next write on the account (or the expiry job) at `now` would add.

    `buckets` must include every bucket with points left and every bucket a hold took
    from. Lapsed holds: a RELEASE of each outstanding debit at the deadline, and an
    EXPIRY for the part whose bucket had expired by then. Then every point left in an
    expired bucket (after lapses and settlement): an EXPIRY at its expiry instant.
    """
    by_id = {b.bucket_id: b for b in buckets}
    found: list[DueEntry] = []
    owed = debt
    for hold in lapse_order(h for h in holds if h.lapsed_at(now)):
        released = release(hold, at=hold.deadline, debt=owed)
        owed -= released.to_debt
        for kind, sign, moves in (
            (EntryKind.RELEASE, 1, released.returned),
            (EntryKind.EXPIRY, -1, released.stay_expired),
        ):
            for debit in moves:
                bucket = by_id[debit.bucket_id]
                found.append(
                    DueEntry(kind, bucket.source, sign * debit.points, hold.deadline,
                             bucket.available_at)
                )  # fmt: skip
    seen = as_read_at(buckets, holds, debt=debt, now=now)
    for bucket in seen.buckets:
        if bucket.remaining > 0 and bucket.expired_at(now):
            assert bucket.expires_at is not None
            found.append(
                DueEntry(EntryKind.EXPIRY, bucket.source, -bucket.remaining, bucket.expires_at,
                         bucket.available_at)
            )  # fmt: skip
    return found


def naive_due_entries(buckets: Iterable[Bucket], *, now: datetime) -> list[DueEntry]:
    """The due expiries counted from the stored rows alone (what the set-wise query adds)."""
    return [
        DueEntry(EntryKind.EXPIRY, b.source, -b.remaining, b.expires_at, b.available_at)
        for b in buckets
        if b.remaining > 0 and b.expires_at is not None and b.expires_at <= now
    ]


# --- The roll-forward ----------------------------------------------------------------------


class Period(enum.IntEnum):
    """Where an entry's effective instant falls against the window (start, end]."""

    BEFORE = 0  # at or before start: the opening
    WINDOW = 1
    AFTER = 2  # after end: not counted


@dataclass(frozen=True)
class Window:
    """(start, end]: what a roll-forward covers; it reports the past, never beyond `now`."""

    start: datetime
    end: datetime

    @classmethod
    def checked(cls, *, start: datetime | None, end: datetime | None, now: datetime) -> "Window":
        if start is None:
            raise InvalidArgument([Violation("start_time", "is required")])
        end = now if end is None else end
        if end > now:
            raise InvalidArgument([Violation("end_time", "must not be after the call's instant")])
        if start >= end:
            raise InvalidArgument([Violation("start_time", "must be before end_time")])
        return cls(start, end)

    def period(self, at: datetime) -> Period:
        if at <= self.start:
            return Period.BEFORE
        return Period.WINDOW if at <= self.end else Period.AFTER


@dataclass(frozen=True)
class Months:
    """Calendar months in a time zone, as the UTC instants where each begins."""

    starts: tuple[datetime, ...]
    labels: tuple[str, ...]

    def index(self, at: datetime) -> int:
        return max(0, bisect_right(self.starts, at) - 1)


def months_between(first: datetime, last: datetime, zone: ZoneInfo) -> Months:
    """Every month from the one holding `first` to the one holding `last`, in `zone`."""
    local = first.astimezone(zone)
    year, month = local.year, local.month
    end = last.astimezone(zone)
    starts, labels = [], []
    while (year, month) <= (end.year, end.month):
        starts.append(datetime(year, month, 1, tzinfo=zone).astimezone(UTC))
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return Months(tuple(starts), tuple(labels))


# (kind, source, period, cohort index or None) → points: the ledger summed by what a
# roll-forward tells apart.
Key = tuple[str, str, Period, int | None]


def tally(entries: Iterable[DueEntry], *, window: Window, months: Months) -> dict[Key, int]:
    sums: dict[Key, int] = defaultdict(int)
    for e in entries:
        key = (e.kind.value, e.source, window.period(e.effective_at), months.index(e.available_at))
        sums[key] += e.points
    return sums


def combine(*parts: tuple[int, Mapping[Key, int]]) -> dict[Key, int]:
    """Σ sign × sums: the set-wise sums, less the accounts recounted one by one, plus them."""
    total: dict[Key, int] = defaultdict(int)
    for sign, sums in parts:
        for key, points in sums.items():
            total[key] += sign * points
    return total


@dataclass(frozen=True)
class Cohort:
    month: str
    issued: int
    redeemed: int
    expired: int
    outstanding: int


@dataclass(frozen=True)
class RollForward:
    opening: int
    issued: Mapping[str, int]
    reinstated: int
    redeemed: int
    expired: int
    clawed_back: int
    debt_incurred: int
    closing: int
    cohorts: tuple[Cohort, ...]
    expired_by_source: Mapping[str, int]

    def balances(self) -> bool:
        """docs/rules.md §8's identity; true by construction, asserted where it is built."""
        moved = (
            sum(self.issued.values())
            + self.reinstated
            - self.redeemed
            - self.expired
            - self.clawed_back
            - self.debt_incurred
        )
        return self.opening + moved == self.closing


_ISSUED = {EntryKind.GRANT, EntryKind.ACCRUAL}
_REINSTATED = {EntryKind.RELEASE, EntryKind.REVERSAL}
_REDEEMED = {EntryKind.REDEMPTION, EntryKind.HOLD}


def roll_forward(sums: Mapping[Key, int], months: Months) -> RollForward:
    """The §8 figures from the ledger's sums: each kind in the window, signs turned to amounts."""
    opening = sum(p for (_, _, period, _), p in sums.items() if period == Period.BEFORE)
    inside = [(EntryKind(k), s, c, p) for (k, s, period, c), p in sums.items()
              if period == Period.WINDOW]  # fmt: skip
    issued: dict[str, int] = defaultdict(int)
    expired_by_source: dict[str, int] = defaultdict(int)
    for kind, source, _, points in inside:
        if kind in _ISSUED:
            issued[source] += points
        elif kind == EntryKind.EXPIRY:
            expired_by_source[source] -= points

    def total(kinds: set[EntryKind]) -> int:
        return sum(p for kind, _, _, p in inside if kind in kinds)

    result = RollForward(
        opening=opening,
        issued={s: p for s, p in sorted(issued.items()) if p},
        reinstated=total(_REINSTATED),
        redeemed=-total(_REDEEMED),
        expired=-total({EntryKind.EXPIRY}),
        clawed_back=-total({EntryKind.CLAWBACK}),
        debt_incurred=-total({EntryKind.DEBT}),
        closing=opening + sum(p for *_, p in inside),
        cohorts=cohorts(sums, months),
        expired_by_source={s: p for s, p in sorted(expired_by_source.items()) if p},
    )
    assert result.balances()
    return result


def cohorts(sums: Mapping[Key, int], months: Months) -> tuple[Cohort, ...]:
    """By the month the points became spendable: the window's credits, spends and expiries,
    and each cohort's net position at the window's end (entries up to it)."""
    figures: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (kind, _, period, cohort), points in sums.items():
        if cohort is None or period == Period.AFTER:
            continue
        row = figures[cohort]
        row[3] += points
        if period == Period.WINDOW:
            if EntryKind(kind) in _ISSUED:
                row[0] += points
            elif EntryKind(kind) in _REDEEMED:
                row[1] -= points
            elif kind == EntryKind.EXPIRY:
                row[2] -= points
    return tuple(Cohort(months.labels[i], *row) for i, row in sorted(figures.items()) if any(row))
