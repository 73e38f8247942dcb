"""pricing.holds: when a hold lapses, where its points go back, in which order holds lapse."""

from datetime import UTC, datetime, timedelta

from pricing.buckets import Bucket, Debit, DebitRecord
from pricing.holds import Hold, lapse_order, release, with_lapsed_holds

T = datetime(2031, 3, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TICK = timedelta(microseconds=1)


def record(
    bucket_id: int, taken: int, returned: int = 0, expires_at: datetime | None = None
) -> DebitRecord:
    return DebitRecord(bucket_id, taken, returned, expires_at, seq=bucket_id)


def hold(redemption_id: str, deadline: datetime, *debits: DebitRecord) -> Hold:
    return Hold(
        redemption_id, f"order-{redemption_id}", sum(d.taken for d in debits), deadline, debits
    )


def bucket(bucket_id: int, remaining: int, expires_at: datetime | None = None) -> Bucket:
    return Bucket(bucket_id, "loyalty", remaining, T - 30 * 24 * HOUR, expires_at, seq=bucket_id)


# A hold of 170 points taken from three buckets, given out of order:
#   bucket 2: took 100, 30 already came back  → 70 outstanding
#   bucket 1: took 50, none came back         → 50 outstanding
#   bucket 3: took 20, all 20 came back       →  0 outstanding (left out)
# outstanding in all: 70 + 50 + 0 = 120
HELD = hold("h", T, record(2, 100, 30), record(1, 50), record(3, 20, 20))


def test_a_hold_lapses_exactly_at_its_deadline() -> None:
    assert not HELD.lapsed_at(T - TICK)
    assert HELD.lapsed_at(T)
    assert HELD.lapsed_at(T + TICK)


def test_release_without_debt_gives_every_outstanding_point_back_to_its_bucket() -> None:
    released = release(HELD, at=T)
    # by bucket id; bucket 3 has nothing outstanding
    assert released.returned == (Debit(1, 50), Debit(2, 70))
    assert released.to_buckets == (Debit(1, 50), Debit(2, 70))
    assert released.stay_expired == ()
    assert released.to_debt == 0
    assert released.points == 120  # 50 + 70


def test_release_pays_debt_first_in_bucket_order() -> None:
    released = release(HELD, at=T, debt=60)
    # debt 60: bucket 1's 50 all pay it (60 - 50 = 10 still owed), then 10 of bucket 2's 70;
    # bucket 2 gets back 70 - 10 = 60
    assert released.to_debt == 60
    assert released.to_buckets == (Debit(2, 60),)
    assert released.returned == (Debit(1, 50), Debit(2, 70))
    assert released.points == 120


def test_debt_larger_than_the_hold_takes_all_of_it() -> None:
    released = release(HELD, at=T, debt=500)
    # min(500, 120) = 120 pays debt; nothing goes back to a bucket
    assert released.to_debt == 120
    assert released.to_buckets == ()
    assert released.points == 120


def test_points_of_a_bucket_expired_while_held_stay_expired_and_pay_no_debt() -> None:
    held = hold(
        "e",
        T + HOUR,
        record(1, 50, expires_at=T),  # expired exactly at T (expiry is exclusive)
        record(2, 70, expires_at=T + TICK),  # still live at T
        record(4, 5),  # never expires
    )
    released = release(held, at=T, debt=30)
    # live: bucket 2's 70 and bucket 4's 5 = 75; debt 30 comes out of bucket 2 (70 - 30 = 40)
    assert released.stay_expired == (Debit(1, 50),)
    assert released.to_debt == 30
    assert released.to_buckets == (Debit(2, 40), Debit(4, 5))
    assert released.returned == (Debit(1, 50), Debit(2, 70), Debit(4, 5))
    assert released.points == 125  # 50 + 70 + 5: all of it is accounted for, expired or not


def test_holds_lapse_by_deadline_then_by_redemption_id() -> None:
    late = hold("a", T + HOUR, record(1, 1))
    tie_c = hold("c", T, record(1, 1))
    tie_b = hold("b", T, record(1, 1))
    assert [h.redemption_id for h in lapse_order([late, tie_c, tie_b])] == ["b", "c", "a"]


# Buckets and holds for with_lapsed_holds, read at NOW = T + 1 h:
#   H1: deadline T,       40 from bucket 1 (which expires at T + 30 min)
#   H2: deadline T + 1 h, 20 outstanding from bucket 2 (took 25, 5 came back)
#   H3: deadline T + 2 h, 7 from bucket 1: not lapsed at NOW
NOW = T + HOUR
B1 = bucket(1, 10, expires_at=T + HOUR / 2)
B2 = bucket(2, 0)
B3 = bucket(3, 5)
H1 = hold("h1", T, record(1, 40, expires_at=T + HOUR / 2))
H2 = hold("h2", NOW, record(2, 25, 5))
H3 = hold("h3", T + 2 * HOUR, record(1, 7, expires_at=T + HOUR / 2))


def test_lapsed_holds_give_their_points_back_as_of_their_deadline() -> None:
    buckets, debt = with_lapsed_holds([B1, B2, B3], [H3, H2, H1], now=NOW)
    # H1 is released as of its deadline T, when bucket 1 was still live: 10 + 40 = 50
    # (bucket 1 has expired by NOW; its own expiry takes them, not the hold);
    # H2 lapses exactly at NOW: bucket 2 gets 0 + 20 = 20; H3 has not lapsed
    assert [b.remaining for b in buckets] == [50, 20, 5]
    assert buckets[2] is B3  # untouched buckets are the same objects
    assert debt == 0


def test_lapsed_holds_pay_debt_first_in_lapse_order() -> None:
    buckets, debt = with_lapsed_holds([B1, B2, B3], [H2, H1], now=NOW, debt=50)
    # H1 (deadline T) lapses first: its 40 pay debt, 50 - 40 = 10 still owed, bucket 1 stays 10;
    # H2: 10 of its 20 pay the rest of the debt, 20 - 10 = 10 go back to bucket 2
    assert [b.remaining for b in buckets] == [10, 10, 5]
    assert debt == 0


def test_points_of_a_bucket_expired_by_the_deadline_do_not_come_back() -> None:
    expired_first = hold("h0", T, record(1, 40, expires_at=T - HOUR / 2))
    buckets, debt = with_lapsed_holds([B1, B2, B3], [expired_first, H2], now=NOW, debt=30)
    # h0's bucket expired half an hour before h0's deadline: its 40 stay expired and pay
    # no debt; H2's 20 pay 20 of the 30 owed, 30 - 20 = 10 still owed, none go back
    assert [b.remaining for b in buckets] == [10, 0, 5]
    assert debt == 10


def test_nothing_lapsed_changes_nothing() -> None:
    buckets, debt = with_lapsed_holds([B1, B2, B3], [H3], now=NOW, debt=7)
    assert buckets == [B1, B2, B3]
    assert debt == 7
