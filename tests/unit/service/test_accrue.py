"""AccrueOrder on fakes: the order checks the accrual, the base deducts what was spent."""

from datetime import timedelta

import pytest

from pricing.errors import AccrualMismatch, OrderAlreadyAccrued, OrderCustomerMismatch
from tests.unit.service.fakes import NOW
from tests.unit.service.support import Calls, P, drills


def test_an_order_without_a_redemption() -> None:
    calls = Calls()
    result = calls.accrue("alice", "o1")
    # 1,000,000 kopecks × 3 % = 30,000 kopecks = 300 points, pending 7 days, then 90 days
    assert result.points == 300
    assert result.available_at == NOW + timedelta(days=7)
    assert result.expires_at == NOW + timedelta(days=7 + 90)
    assert calls.ledger("alice") == [("ACCRUAL", 300)]
    order = calls.store.state.orders[(P, "o1")]
    assert (order.customer_id, [x.quantity for x in order.lines]) == ("alice", [2])


def test_the_delivered_part_earns_on_what_was_paid() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300)
    # 1 of 2 units delivered: spent on it 300 − floor(300 × 1 / 2) = 150 points = 15,000;
    # base 500,000 − 15,000 = 485,000; × 3 % = 14,550 kopecks → 145 points
    assert calls.accrue("alice", "o1", drills(quantity=1)).points == 145


def test_held_points_count_as_spent() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=600)
    # base 1,000,000 − 30,000 = 970,000; × 3 % = 29,100 kopecks = 291 points
    assert calls.accrue("alice", "o1").points == 291


def test_ten_times_the_price_is_refused() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300)
    with pytest.raises(AccrualMismatch) as caught:
        calls.accrue("alice", "o1", drills(unit_price_minor=5_000_000))
    assert [v.field for v in caught.value.violations] == ["cart.lines[0].unit_price_minor"]
    assert calls.ledger("alice") == [("GRANT", 500), ("REDEMPTION", -300)]


def test_another_customer_is_refused_and_earns_nothing() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300)
    with pytest.raises(OrderCustomerMismatch):
        calls.accrue("bob", "o1")
    assert calls.ledger("bob") == []
    assert calls.store.state.orders[(P, "o1")].accrual is None


def test_once_per_order() -> None:
    calls = Calls()
    calls.accrue("alice", "o1")
    with pytest.raises(OrderAlreadyAccrued):
        calls.accrue("alice", "o1")
    assert calls.ledger("alice") == [("ACCRUAL", 300)]


def test_a_mature_accrual_pays_the_debt_first() -> None:
    calls = Calls()
    calls.store.state.debts[(P, "alice")] = 100
    # delivered now, matured 7 days later: accrued at that later instant it pays the
    # debt at once: 300 − 100 = 200 left in its bucket, debt 0
    calls.accrue("alice", "o1", now=NOW + timedelta(days=8))
    assert calls.store.state.debts[(P, "alice")] == 0
    (bucket,) = calls.store.state.buckets.values()
    assert (bucket.remaining, bucket.settled) == (200, True)
