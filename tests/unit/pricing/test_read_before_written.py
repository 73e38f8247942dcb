"""Reads before what was written down (rules.md §7): expiry and lapses undone at an earlier now."""

from datetime import UTC, datetime, timedelta

from pricing.buckets import Bucket, DebitRecord, before_written_expiry
from pricing.holds import Hold, before_written_lapses, release

T = datetime(2030, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def bucket(
    bucket_id: int, remaining: int, *, expires_at: datetime | None, expired: int = 0
) -> Bucket:
    return Bucket(bucket_id, "promo", remaining, T - 100 * H, expires_at, seq=bucket_id,
                  expired_points=expired)  # fmt: skip


def test_expiry_written_after_now_is_undone_and_before_now_is_kept() -> None:
    # bucket 1 expired at T + 10 h (40 written off), bucket 2 at T − 1 h (25 written off)
    written = [
        bucket(1, 0, expires_at=T + 10 * H, expired=40),
        bucket(2, 5, expires_at=T - H, expired=25),
    ]
    found = before_written_expiry(written, T)
    assert [(b.remaining, b.expired_points) for b in found] == [(40, 0), (5, 25)]


def lapsed_hold(*, paid_debt: int) -> Hold:
    # 30 taken from bucket 1 (expires T + 10 h) and 20 from bucket 2 (expires T + 2 h); the
    # hold's deadline T + 5 h: bucket 2 had expired by then, its 20 stayed expired
    debits = (
        DebitRecord(1, taken=30, returned=30, expires_at=T + 10 * H, seq=1),
        DebitRecord(2, taken=20, returned=20, expires_at=T + 2 * H, seq=2),
    )
    return Hold("r-1", "o-1", 50, T + 5 * H, debits, paid_debt=paid_debt)


def test_a_lapse_written_after_now_is_live_again() -> None:
    # as the lapse wrote it at T + 5 h: bucket 1 got 30 back (70 + 30 = 100); bucket 2's
    # 20 went to expired_points, and the job later wrote off bucket 2's own 15 as well
    written = [
        bucket(1, 100, expires_at=T + 10 * H),
        bucket(2, 0, expires_at=T + 2 * H, expired=35),
    ]
    # at T + 1 h nothing has expired yet: bucket 2 had its 15, the hold held 50
    now = T + H
    found, debt, holds = before_written_lapses(before_written_expiry(written, now),
                                               [lapsed_hold(paid_debt=0)], debt=0)  # fmt: skip
    assert [b.remaining for b in found] == [70, 15]  # 100 − 30, 35 − 20
    assert debt == 0
    assert [(h.points, [d.outstanding for d in h.debits]) for h in holds] == [(50, [30, 20])]
    # and lapsing it again at its deadline gives back exactly what was written
    again = release(holds[0], at=T + 5 * H)
    assert [(d.bucket_id, d.points) for d in again.to_buckets] == [(1, 30)]
    assert [(d.bucket_id, d.points) for d in again.stay_expired] == [(2, 20)]


def test_what_a_lapse_paid_of_the_debt_is_owed_again() -> None:
    # the lapse paid 12 of the debt from bucket 1's 30: the bucket got 18 (70 + 18 = 88)
    written = [bucket(1, 88, expires_at=T + 10 * H), bucket(2, 0, expires_at=T + 2 * H, expired=20)]
    now = T + 3 * H  # bucket 2 expired at T + 2 h: its points stay written off
    found, debt, _ = before_written_lapses(before_written_expiry(written, now),
                                           [lapsed_hold(paid_debt=12)], debt=5)  # fmt: skip
    assert [b.remaining for b in found] == [70, 0]  # 88 − 18; bucket 2 expired, nothing left
    assert debt == 17  # 5 owed now + the 12 the lapse paid


def test_points_of_a_bucket_expiring_at_the_deadline_stayed_expired() -> None:
    # A hold's deadline T + 5 h; bucket 1 (20 taken) expires exactly then, so the lapse left
    # its 20 expired (expiry is exclusive: docs/rules.md §5); bucket 2 (30 taken) was live
    # and its 30 paid 12 of the debt first, the bucket got 18 (70 + 18 = 88). The job then
    # wrote off bucket 1's own 15 as well: 20 + 15 = 35 expired.
    debits = (
        DebitRecord(1, taken=20, returned=20, expires_at=T + 5 * H, seq=1),
        DebitRecord(2, taken=30, returned=30, expires_at=T + 10 * H, seq=2),
    )
    lapsed = Hold("r-1", "o-1", 50, T + 5 * H, debits, paid_debt=12)
    written = [bucket(1, 0, expires_at=T + 5 * H, expired=35), bucket(2, 88, expires_at=T + 10 * H)]
    now = T + H
    found, debt, _ = before_written_lapses(before_written_expiry(written, now), [lapsed], debt=5)
    # at T + 1 h bucket 1 held its own 15 (35 − 20 held); bucket 2 70 (88 − 18)
    assert [b.remaining for b in found] == [15, 70]
    assert debt == 17  # 5 owed now + the 12 the lapse paid
