"""ReverseRedemption on fakes: the order plans the return, only its customer's account moves."""

import pytest

from pricing.cart import Cart, CartLine
from pricing.errors import ExceedsRemaining, InvalidArgument, OrderNotFound
from pricing.order import RedemptionState
from tests.unit.service.support import Calls, P


def two_lines() -> Cart:
    # A: 100,000 kopecks, X: 50,000; 3 % of 150,000 = 4,500 = 45 points, split 2 : 1
    return Cart("RUB", (CartLine("A", 1, 100_000), CartLine("X", 1, 50_000)))


def test_a_cancelled_line_with_only_points_is_returnable() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 45, two_lines())
    # X cancelled before delivery: the accrual covers A. A took 30 points: base 100,000 −
    # 3,000 = 97,000; × 3 % = 2,910 kopecks → 29 points.
    assert calls.accrue("alice", "o1", Cart("RUB", (CartLine("A", 1, 100_000),))).points == 29
    back = calls.reverse("o1", ("X", 1))
    assert (back.points_returned, back.points_clawed_back, back.debt_points) == (15, 0, 0)
    assert back.redemption is not None
    assert back.redemption.state is RedemptionState.PARTIALLY_REVERSED
    then = calls.reverse("o1", ("A", 1))  # A gives back 30 and its 29 (still pending)
    assert (then.points_returned, then.points_clawed_back) == (30, 29)
    assert then.redemption is not None and then.redemption.state is RedemptionState.REVERSED
    # 500 − 45 + 15 + 30 = 500
    assert then.balance_after == 500
    assert calls.ledger("alice")[-3:] == [("REVERSAL", 15), ("REVERSAL", 30), ("CLAWBACK", -29)]


def test_a_line_with_only_an_accrual() -> None:
    calls = Calls()
    calls.accrue("alice", "o1")  # 300 points over 2 units
    back = calls.reverse("o1", ("1", 1))
    # floor(300 × 1 / 2) = 150 taken back from the pending bucket
    assert (back.points_returned, back.points_clawed_back, back.redemption) == (0, 150, None)


def test_a_hold_is_released_whole() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=600)
    with pytest.raises(InvalidArgument):
        calls.reverse("o1", ("1", 1))
    back = calls.reverse("o1")
    assert (back.points_returned, back.released, back.balance_after) == (300, True, 500)
    assert back.redemption is not None and back.redemption.state is RedemptionState.RELEASED


def test_only_the_orders_customer_is_touched() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.grant("bob", 500)
    calls.apply("alice", "o1", 300)
    calls.store.state.locked.clear()
    calls.reverse("o1")
    assert calls.store.state.locked == [(P, "alice")]
    assert calls.ledger("bob") == [("GRANT", 500)]
    assert calls.spendable("alice") == 500


def test_errors() -> None:
    calls = Calls()
    with pytest.raises(OrderNotFound):
        calls.reverse("nobody")
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300)
    with pytest.raises(ExceedsRemaining):
        calls.reverse("o1", ("1", 3))
    with pytest.raises(InvalidArgument):
        calls.reverse("o1", ("2", 1))
    assert calls.store.state.orders[(P, "o1")].lines[0].returned_units == 0
