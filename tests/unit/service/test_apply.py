"""ApplyRedemption on fakes: load the account (and the order's head) under its lock, ask the
order and the pricing, save the order, the attempt, the debits and the ledger entries."""

from datetime import datetime

import pytest

from pricing.errors import (
    ExceedsMaximum,
    IdempotencyKeyReused,
    OrderAlreadyRedeemed,
    OrderCustomerMismatch,
)
from pricing.order import Order, RedemptionState
from server.store.errors import DuplicateOrder
from tests.unit.service.fakes import NOW, FakeOrders, FakeStore
from tests.unit.service.support import Calls, P, drills


def test_spends_and_records_the_order_whole() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300)
    # 2 × 500,000 = 1,000,000 kopecks; base tier 3 % → 30,000 kopecks = 300 points
    result = calls.applied()
    assert (result.redemption.points, result.redemption.state) == (300, RedemptionState.APPLIED)
    assert result.balance_after == 500 - 300
    assert calls.ledger("alice") == [("GRANT", 500), ("REDEMPTION", -300)]
    order = calls.store.state.orders[(P, "o1")]
    assert order.customer_id == "alice"
    (line,) = order.lines
    assert (line.line.sku, line.line.brand, line.line.tags) == ("drill", "Makita", ("power",))
    assert (line.quantity, line.line.unit_price_minor, line.whole) == (2, 500_000, True)
    assert [r.attempt for r in order.attempts] == [1]
    assert calls.store.state.locked[-1] == (P, "alice")


def test_a_hold_takes_the_points_out_now() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=600)
    assert calls.applied().redemption.state is RedemptionState.HELD
    assert calls.ledger("alice") == [("GRANT", 500), ("HOLD", -300)]


def test_another_customer_is_refused_and_nothing_changes() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.grant("bob", 500)
    calls.apply("alice", "o1", 300)
    with pytest.raises(OrderCustomerMismatch):
        calls.apply("bob", "o1", 100)
    assert calls.ledger("bob") == [("GRANT", 500)]
    assert calls.spendable("bob") == 500


def test_a_payment_retry_after_a_released_hold_is_a_new_attempt() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=600)
    first = calls.applied().redemption
    calls.reverse("o1")  # payment failed: the hold is released, 300 back
    calls.apply("alice", "o1", 200)
    retry = calls.applied().redemption
    assert retry.redemption_id != first.redemption_id
    assert (retry.attempt, retry.points, retry.state) == (2, 200, RedemptionState.APPLIED)
    # 500 − 300 (hold) + 300 (release) − 200 = 300
    assert calls.spendable("alice") == 300
    order = calls.store.state.orders[(P, "o1")]
    assert [r.state for r in order.attempts] == [RedemptionState.RELEASED, RedemptionState.APPLIED]


def test_a_live_redemption_holds_the_order() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 100)
    with pytest.raises(OrderAlreadyRedeemed):
        calls.apply("alice", "o1", 100)
    assert calls.spendable("alice") == 400


def test_an_order_recorded_meanwhile_by_another_customer() -> None:
    # The store's UNIQUE key on orders fired: only another customer's call can have
    # recorded it (this customer's calls wait for its account lock).
    class Racing(FakeOrders):
        def add(self, order: Order, *, now: datetime) -> None:
            raise DuplicateOrder("pk_orders")

    store = FakeStore(orders=Racing)
    calls = Calls(store)
    calls.grant("alice", 500)
    with pytest.raises(OrderCustomerMismatch):
        calls.apply("alice", "o1", 300)
    assert calls.spendable("alice") == 500  # rolled back
    assert (P, "o1") not in store.state.orders


def test_more_than_the_cart_allows_writes_nothing() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    with pytest.raises(ExceedsMaximum):
        calls.apply("alice", "o1", 301)
    assert (P, "o1") not in calls.store.state.orders
    assert calls.ledger("alice") == [("GRANT", 500)]


def test_a_replay_answers_again_and_changes_nothing() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    first = calls.apply("alice", "o1", 300, request_id="same")
    again = calls.apply("alice", "o1", 300, request_id="same")
    assert again == first
    assert calls.spendable("alice") == 200
    assert calls.deps.metrics.replays.labels("ApplyRedemption")._value.get() == 1


def test_the_same_request_id_for_another_method_is_refused() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, request_id="k")
    store = calls.store
    store.state.answers[(P, "k")] = ("GrantPoints", b"f", b"")
    with pytest.raises(IdempotencyKeyReused):
        calls.apply("alice", "o2", 300, cart=drills(), request_id="k", now=NOW)
