"""pricing.liability: bands, an account as a read sees it, due entries, months, the roll-forward."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.buckets import Bucket, DebitRecord
from pricing.errors import InvalidArgument
from pricing.holds import Hold
from pricing.liability import (
    GONE,
    HOUR,
    NEVER,
    PENDING,
    EntryKind,
    Period,
    Window,
    account_liability,
    as_read_at,
    band_of,
    cell_at,
    due_entries,
    money,
    months_between,
    naive_due_entries,
    roll_forward,
)
from pricing.money import INT64_MAX

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MSK = ZoneInfo("Europe/Moscow")


def bucket(i: int, source: str, remaining: int, avail: float, expires: float | None,
           settled: bool = True) -> Bucket:  # fmt: skip
    ends = None if expires is None else NOW + expires * DAY
    return Bucket(i, source, remaining, NOW + avail * DAY, ends, seq=i, settled=settled)


def test_bands_are_half_open_from_the_instant() -> None:
    # [0, 30) days, [30, 60), [60, 90), [90, 365), [365, ∞), never.
    assert [band_of(NOW + d * DAY, now=NOW) for d in (0.5, 29.99, 30, 59, 60, 90, 364, 365)] == [
        0, 0, 1, 1, 2, 3, 3, 4,
    ]  # fmt: skip
    assert band_of(None, now=NOW) == 5


def test_where_an_hour_cell_of_the_running_totals_counts() -> None:
    # NOW is 12:00; at 12:20 the first band ends at 12:20 thirty days on.
    at = NOW + 20 * HOUR / 60
    noon, last_hour, next_hour = NOW, NOW - HOUR, NOW + HOUR
    assert cell_at(last_hour - HOUR, last_hour, now=at) == GONE  # expired by 12:00
    assert cell_at(last_hour - HOUR, noon, now=at) is None  # expires 12:00–13:00: around 12:20
    assert cell_at(next_hour, next_hour + DAY, now=at) == PENDING  # spendable from 13:00
    assert cell_at(noon, noon + DAY, now=at) is None  # spendable 12:00–13:00: around 12:20
    assert cell_at(last_hour, None, now=at) == NEVER
    assert cell_at(last_hour, next_hour + DAY, now=at) == 0
    # Expiring 12:00–13:00 thirty days on: on both sides of the band's edge at 12:20.
    assert cell_at(last_hour, noon + 30 * DAY, now=at) is None
    assert cell_at(last_hour, noon + 30 * DAY, now=NOW) == 1  # the edge at the hour itself
    assert cell_at(last_hour, last_hour + 30 * DAY, now=at) == 0


def test_an_account_as_stored() -> None:
    buckets = [
        bucket(1, "loyalty", 100, -10, 20),  # spendable, band 0
        bucket(2, "promo", 50, -1, 45),  # spendable, band 1
        bucket(3, "action", 7, -5, None),  # never expires
        bucket(4, "loyalty", 30, 3, 93),  # pending
        bucket(5, "loyalty", 40, -100, -1),  # expired: counts nowhere
        bucket(6, "promo", 0, -1, 10),  # empty
    ]
    hold = Hold("r1", "o1", 25, NOW + DAY, ())
    got = account_liability(buckets, [hold], debt=3, now=NOW)
    assert (got.spendable, got.pending, got.held, got.debt) == (157, 30, 25, 3)
    assert got.by_source == {"loyalty": 100, "promo": 50, "action": 7}
    assert got.bands == (100, 50, 0, 0, 0, 7)
    assert (got.customers, got.customers_in_debt) == (1, 1)


def test_an_empty_bucket_adds_no_source() -> None:
    # an action bucket spent to 0: the account has no action points, not "action: 0"
    got = account_liability(
        [bucket(1, "loyalty", 5, -1, 10), bucket(2, "action", 0, -1, None)], [], debt=0, now=NOW
    )
    assert (got.spendable, got.by_source, got.bands) == (5, {"loyalty": 5}, (5, 0, 0, 0, 0, 0))


def test_a_window_holds_its_end_and_not_its_start() -> None:
    # (start, end]: an entry at the start is before it, one at the end is in it
    window = Window(NOW - DAY, NOW)
    tick = timedelta(microseconds=1)
    assert [window.period(at) for at in (NOW - DAY, NOW - DAY + tick, NOW, NOW + tick)] == [
        Period.BEFORE,
        Period.WINDOW,
        Period.WINDOW,
        Period.AFTER,
    ]


def test_a_read_gives_lapsed_holds_back_then_settles_debt() -> None:
    # A hold of 40 from bucket 1 lapsed a day ago; debt 50. The 40 come back and pay debt
    # first (→ 10 owed); then the matured unsettled accrual (60) pays the 10 → 50 left.
    b1 = bucket(1, "promo", 0, -10, 30)
    accrual = bucket(2, "loyalty", 60, -2, 88, settled=False)
    hold = Hold("r1", "o1", 40, NOW - DAY, (DebitRecord(1, 40, 0, b1.expires_at, 1),))
    seen = as_read_at([b1, accrual], [hold], debt=50, now=NOW)
    assert seen.debt == 0
    assert [(b.bucket_id, b.remaining) for b in seen.buckets] == [(1, 0), (2, 50)]
    got = seen.liability()
    assert (got.spendable, got.held, got.debt) == (50, 0, 0)


def test_due_entries_are_what_the_job_would_write() -> None:
    # Bucket 1 expired 5 days ago with 30 left; a hold of 20 from bucket 2 lapsed 3 days ago
    # and bucket 2 expired 2 days ago (after the lapse: the 20 came back, then expired with
    # its 10); a hold of 8 from bucket 3, expired before the hold lapsed: released and
    # expired at the deadline.
    b1 = bucket(1, "promo", 30, -50, -5)
    b2 = bucket(2, "loyalty", 10, -50, -2)
    b3 = bucket(3, "promo", 0, -50, -4)
    holds = [
        Hold("r2", "o2", 20, NOW - 3 * DAY, (DebitRecord(2, 20, 0, b2.expires_at, 2),)),
        Hold("r3", "o3", 8, NOW - 1 * DAY, (DebitRecord(3, 8, 0, b3.expires_at, 3),)),
    ]
    got = sorted((e.kind.value, e.points, e.effective_at) for e in due_entries(
        [b1, b2, b3], holds, debt=0, now=NOW))  # fmt: skip
    assert got == sorted([
        ("RELEASE", 20, NOW - 3 * DAY),
        ("RELEASE", 8, NOW - DAY),
        ("EXPIRY", -8, NOW - DAY),
        ("EXPIRY", -30, NOW - 5 * DAY),
        ("EXPIRY", -30, NOW - 2 * DAY),  # 10 + the 20 given back
    ])  # fmt: skip
    naive = [(e.points, e.effective_at) for e in naive_due_entries([b1, b2, b3], now=NOW)]
    assert naive == [(-30, NOW - 5 * DAY), (-10, NOW - 2 * DAY)]


def test_an_expiry_is_due_at_its_instant() -> None:
    # spendable while t < expires_at: at the instant itself the points are due to expire
    at_now, later = bucket(1, "promo", 6, -5, 0), bucket(2, "promo", 4, -5, 0.5)
    naive = [(e.points, e.effective_at) for e in naive_due_entries([at_now, later], now=NOW)]
    assert naive == [(-6, NOW)]


def test_months_are_calendar_months_in_the_program_zone() -> None:
    # 2026-03-31 22:00 UTC is 1 April 01:00 in Moscow (UTC+3).
    months = months_between(datetime(2026, 2, 27, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC),
                            MSK)  # fmt: skip
    assert months.labels == ("2026-02", "2026-03", "2026-04")
    assert months.starts[2] == datetime(2026, 3, 31, 21, 0, tzinfo=UTC)
    assert months.index(datetime(2026, 3, 31, 22, 0, tzinfo=UTC)) == 2
    assert months.index(datetime(2026, 3, 31, 20, 59, tzinfo=UTC)) == 1
    december = months_between(datetime(2025, 12, 5, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC),
                              MSK)  # fmt: skip
    assert december.labels == ("2025-12", "2026-01")


def test_the_roll_forward_from_sums() -> None:
    months = months_between(NOW - 40 * DAY, NOW, MSK)
    b, w = Period.BEFORE, Period.WINDOW
    sums = {
        ("GRANT", "promo", b, 0): 1000, ("REDEMPTION", "promo", b, 0): -200,
        ("DEBT", "", b, None): -50,
        ("ACCRUAL", "loyalty", w, 1): 300, ("GRANT", "promo", w, 1): 40,
        ("HOLD", "promo", w, 0): -70, ("RELEASE", "promo", w, 0): 70,
        ("REVERSAL", "promo", w, 0): 15, ("EXPIRY", "promo", w, 0): -600,
        ("CLAWBACK", "loyalty", w, 1): -12, ("DEBT", "", w, None): -8,
        ("EXPIRY", "loyalty", Period.AFTER, 1): -288,  # after the window: not counted
    }  # fmt: skip
    got = roll_forward(sums, months)
    # Opening 1000 − 200 − 50 = 750; closing 750 + 340 + 85 − 70 − 600 − 12 − 8 = 485.
    assert got.opening == 750
    assert dict(got.issued) == {"loyalty": 300, "promo": 40}
    assert (got.reinstated, got.redeemed, got.expired) == (85, 70, 600)
    assert (got.clawed_back, got.debt_incurred, got.closing) == (12, 8, 485)
    assert dict(got.expired_by_source) == {"promo": 600}  # loyalty's 288 expire after it
    assert [(c.month, c.issued, c.redeemed, c.expired, c.outstanding) for c in got.cohorts] == [
        ("2026-04", 0, 70, 600, 1000 - 200 - 70 + 70 + 15 - 600),
        ("2026-05", 340, 0, 0, 328),
    ]


@given(st.dictionaries(
    st.tuples(st.sampled_from([k.value for k in EntryKind]), st.sampled_from(["a", "b"]),
              st.sampled_from(list(Period)), st.sampled_from([None, 0, 1])),
    st.integers(-(10**18), 10**18), max_size=40))  # fmt: skip
def test_the_identity_holds_for_any_sums(sums: dict) -> None:  # type: ignore[type-arg]
    months = months_between(NOW - 40 * DAY, NOW, MSK)
    assert roll_forward(sums, months).balances()


def test_money_is_exact_then_clamped_to_int64() -> None:
    assert money(2430, point_value_minor=100) == 243_000
    assert money(10**17, point_value_minor=100) == INT64_MAX  # 10^19 does not fit
    assert money(-(10**17), point_value_minor=100) == -(2**63)


def test_a_window_is_in_the_past_and_not_empty() -> None:
    assert Window.checked(start=NOW - DAY, end=None, now=NOW) == Window(NOW - DAY, NOW)
    for start, end, field in ((None, NOW, "start_time"), (NOW - DAY, NOW + DAY, "end_time"),
                              (NOW, NOW, "start_time")):  # fmt: skip
        with pytest.raises(InvalidArgument) as caught:
            Window.checked(start=start, end=end, now=NOW)
        assert caught.value.violations[0].field == field
