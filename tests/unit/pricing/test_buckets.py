"""pricing.buckets: spendability, first-expiring-first spending, restores, clawbacks, debt."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pricing.buckets import (
    Bucket,
    Debit,
    DebitRecord,
    DebtPayment,
    balance_by_source,
    pay_debt_first,
    plan_clawback,
    plan_restore,
    plan_spend,
    settle_matured,
    spendable,
)

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=MSK)


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=MSK)


# The wallet at NOW (2026-03-15 12:00 MSK):
B1 = Bucket(1, "loyalty", 10, at(3, 1), at(4, 1), seq=1)
B2 = Bucket(2, "promo", 5, at(3, 1), at(3, 20), seq=2)
B3 = Bucket(3, "action", 8, at(2, 1), None, seq=3)  # never expires
B4 = Bucket(4, "loyalty", 4, at(3, 1), at(3, 20), seq=4)  # same expiry as B2, created later
B5 = Bucket(5, "loyalty", 100, at(3, 16), at(3, 17), seq=5)  # pending: matures tomorrow
B6 = Bucket(6, "loyalty", 100, at(1, 1), NOW, seq=6)  # expires exactly at NOW
B7 = Bucket(7, "loyalty", 0, at(1, 1), at(3, 16), seq=7)  # empty
B8 = Bucket(8, "promo", 3, NOW, at(5, 1), seq=8)  # matures exactly at NOW
WALLET = [B1, B2, B3, B4, B5, B6, B7, B8]


class TestSpendability:
    def test_boundaries(self) -> None:
        # available_at ≤ t < expires_at
        assert B8.spendable_at(NOW)  # available_at == now
        assert not B8.pending_at(NOW)  # matured at this very instant: no longer pending
        assert not B6.spendable_at(NOW)  # expires_at == now
        assert B6.expired_at(NOW)
        assert not B5.spendable_at(NOW)
        assert B5.pending_at(NOW)
        assert B3.spendable_at(datetime(2100, 1, 1, tzinfo=MSK))
        assert not B3.expired_at(datetime(2100, 1, 1, tzinfo=MSK))

    def test_spendable_first_expiring_first(self) -> None:
        # 03-20 (seq 2), 03-20 (seq 4), 04-01, 05-01, never; pending, expired, empty left out
        assert [b.bucket_id for b in spendable(WALLET, NOW)] == [2, 4, 1, 8, 3]

    def test_balance_by_source(self) -> None:
        # loyalty 10 + 4 = 14; promo 5 + 3 = 8; action 8
        assert balance_by_source(WALLET, NOW) == {"promo": 8, "loyalty": 14, "action": 8}


class TestPlanSpend:
    def test_first_expiring_first(self) -> None:
        # 20: B2 5 (15 left), B4 4 (11), B1 10 (1), B8 1
        debits = plan_spend(WALLET, points=20, now=NOW, source_limits={})
        assert debits == [Debit(2, 5), Debit(4, 4), Debit(1, 10), Debit(8, 1)]

    def test_everything(self) -> None:
        # spendable: 5 + 4 + 10 + 3 + 8 = 30
        debits = plan_spend(WALLET, points=30, now=NOW, source_limits={})
        assert sum(d.points for d in debits) == 30
        assert [d.bucket_id for d in debits] == [2, 4, 1, 8, 3]

    def test_cannot_cover(self) -> None:
        with pytest.raises(ValueError, match="1 short"):
            plan_spend(WALLET, points=31, now=NOW, source_limits={})

    def test_zero(self) -> None:
        assert plan_spend(WALLET, points=0, now=NOW, source_limits={}) == []

    def test_source_limit(self) -> None:
        # promo at most 2: B2 2 (18 left), B4 4 (14), B1 10 (4), B8 promo full, B3 4
        debits = plan_spend(WALLET, points=20, now=NOW, source_limits={"promo": 2, "loyalty": None})
        assert debits == [Debit(2, 2), Debit(4, 4), Debit(1, 10), Debit(3, 4)]

    def test_source_limit_short(self) -> None:
        # promo at most 2, loyalty at most 5, action 8: 15 at most
        limits = {"promo": 2, "loyalty": 5, "action": None}
        # promo: B2 2; loyalty: B4 4, B1 1; B8 promo full; action: B3 8 → 2 + 5 + 8 = 15
        debits = plan_spend(WALLET, points=15, now=NOW, source_limits=limits)
        assert debits == [Debit(2, 2), Debit(4, 4), Debit(1, 1), Debit(3, 8)]
        with pytest.raises(ValueError, match="1 short"):
            plan_spend(WALLET, points=16, now=NOW, source_limits=limits)

    def test_later_the_pending_bucket_is_spent_first(self) -> None:
        # at 03-16 12:00: B5 (expires 03-17) matured, B6 expired; B5 first
        debits = plan_spend(WALLET, points=3, now=at(3, 16, 12), source_limits={})
        assert debits == [Debit(5, 3)]


class TestPlanRestore:
    R1 = DebitRecord(1, taken=5, returned=0, expires_at=at(3, 20), seq=1)
    R2 = DebitRecord(2, taken=7, returned=2, expires_at=at(6, 1), seq=2)
    R3 = DebitRecord(3, taken=3, returned=0, expires_at=None, seq=3)
    R4 = DebitRecord(4, taken=4, returned=0, expires_at=at(6, 1), seq=4)

    def test_latest_expiring_first(self) -> None:
        records = [self.R1, self.R2, self.R3, self.R4]
        # never-expiring R3 3 (6 left); 06-01: R4 (created later) 4 (2), R2 outstanding 7 − 2 = 5
        # → 2
        assert plan_restore(records, points=9) == [Debit(3, 3), Debit(4, 4), Debit(2, 2)]

    def test_everything_outstanding(self) -> None:
        records = [self.R1, self.R2, self.R3, self.R4]
        # 3 + 4 + 5 + 5 = 17
        assert plan_restore(records, points=17) == [
            Debit(3, 3),
            Debit(4, 4),
            Debit(2, 5),
            Debit(1, 5),
        ]
        with pytest.raises(ValueError, match="1 too many"):
            plan_restore(records, points=18)

    def test_fully_returned_record_is_skipped(self) -> None:
        done = DebitRecord(9, taken=4, returned=4, expires_at=None, seq=9)
        # done has nothing outstanding; R1 takes 2
        assert plan_restore([done, self.R1], points=2) == [Debit(1, 2)]


class TestPlanClawback:
    # The accrual's own bucket: pending until 03-22, 6 of its points left.
    OWN = Bucket(10, "loyalty", 6, at(3, 22), at(6, 20), seq=10)
    OTHER_PENDING = Bucket(11, "loyalty", 50, at(3, 25), at(6, 1), seq=11)

    def wallet(self) -> list[Bucket]:
        return [B1, B2, B3, self.OWN, self.OTHER_PENDING, B6]

    def test_own_bucket_first_even_pending(self) -> None:
        plan = plan_clawback(self.wallet(), points=4, own_bucket_id=10, now=NOW)
        assert plan.debits == [Debit(10, 4)]
        assert (plan.clawed_back, plan.debt) == (4, 0)

    def test_then_others_first_expiring_first(self) -> None:
        # 15: own 6 (9 left), B2 (03-20) 5 (4), B1 (04-01) 4; pending and expired ones untouched
        plan = plan_clawback(self.wallet(), points=15, own_bucket_id=10, now=NOW)
        assert plan.debits == [Debit(10, 6), Debit(2, 5), Debit(1, 4)]
        assert (plan.clawed_back, plan.debt) == (15, 0)

    def test_then_debt(self) -> None:
        # 40: own 6, B2 5, B1 10, B3 8 = 29 taken; 40 − 29 = 11 becomes debt
        plan = plan_clawback(self.wallet(), points=40, own_bucket_id=10, now=NOW)
        assert plan.debits == [Debit(10, 6), Debit(2, 5), Debit(1, 10), Debit(3, 8)]
        assert (plan.clawed_back, plan.debt) == (29, 11)

    def test_expired_own_bucket_is_taken_from_first(self) -> None:
        # B6 expired at NOW with 100 unspent: never spent, so the 7 come from it, not others
        plan = plan_clawback(self.wallet(), points=7, own_bucket_id=6, now=NOW)
        assert plan.debits == [Debit(6, 7)]

    def test_own_points_the_job_wrote_off_come_before_others(self) -> None:
        # B7 (own) is empty, 4 of its points were written off as expired: those 4, then B2 3
        plan = plan_clawback(self.wallet(), points=7, own_bucket_id=7, now=NOW, own_written_off=4)
        assert plan.debits == [Debit(2, 3)]
        assert (plan.written_off, plan.clawed_back, plan.debt) == (4, 7, 0)

    def test_no_own_bucket(self) -> None:
        plan = plan_clawback(self.wallet(), points=3, own_bucket_id=None, now=NOW)
        assert plan.debits == [Debit(2, 3)]

    def test_nothing_to_take(self) -> None:
        plan = plan_clawback([], points=5, own_bucket_id=None, now=NOW)
        assert (plan.debits, plan.clawed_back, plan.debt) == ([], 0, 5)


@pytest.mark.parametrize(
    ("credit", "debt", "expected"),
    [
        (10, 4, DebtPayment(to_debt=4, to_bucket=6)),  # 10 − 4 = 6 stays
        (3, 5, DebtPayment(to_debt=3, to_bucket=0)),  # all 3 pay debt, 2 still owed
        (7, 0, DebtPayment(to_debt=0, to_bucket=7)),
        (5, 5, DebtPayment(to_debt=5, to_bucket=0)),
    ],
)
def test_pay_debt_first(credit: int, debt: int, expected: DebtPayment) -> None:
    assert pay_debt_first(credit=credit, debt=debt) == expected


class TestSettleMatured:
    """Accruals (unsettled credits) pay debt as they mature, in the order they matured."""

    # at NOW (03-15 12:00): A matured 03-10, B matured exactly at NOW, C matures 03-20
    A = Bucket(11, "loyalty", 30, at(3, 10), at(6, 1), seq=12, settled=False)
    B = Bucket(12, "loyalty", 50, NOW, at(6, 1), seq=11, settled=False)
    C = Bucket(13, "loyalty", 40, at(3, 20), at(6, 1), seq=13, settled=False)
    SETTLED = Bucket(14, "loyalty", 70, at(3, 1), at(6, 1), seq=14)

    def test_matured_credits_pay_the_debt_oldest_maturity_first(self) -> None:
        settlement = settle_matured([self.C, self.B, self.SETTLED, self.A], debt=60, now=NOW)
        # A (03-10) pays min(30, 60) = 30, debt 60 - 30 = 30; B (NOW) pays min(50, 30) = 30,
        # debt 0; C has not matured; the settled bucket never pays
        assert settlement.payments == (Debit(11, 30), Debit(12, 30))
        assert settlement.settled == (11, 12)
        assert settlement.debt == 0
        # written down: A 30 - 30 = 0 and B 50 - 30 = 20 left, both settled now
        a, b, c, settled = settlement.apply([self.A, self.B, self.C, self.SETTLED])
        assert (a.remaining, a.settled, b.remaining, b.settled) == (0, True, 20, True)
        assert (c, settled) == (self.C, self.SETTLED)

    def test_a_credit_matured_once_the_debt_is_paid_pays_nothing_but_settles(self) -> None:
        settlement = settle_matured([self.A, self.B], debt=20, now=NOW)
        # A pays min(30, 20) = 20; B pays min(50, 0) = 0: no payment, settled all the same
        assert settlement.payments == (Debit(11, 20),)
        assert settlement.settled == (11, 12)
        assert settlement.debt == 0

    def test_debt_larger_than_the_credits_stays_owed(self) -> None:
        settlement = settle_matured([self.A, self.B], debt=100, now=NOW)
        # 30 + 50 = 80 paid, 100 - 80 = 20 still owed
        assert settlement.payments == (Debit(11, 30), Debit(12, 50))
        assert settlement.debt == 20
