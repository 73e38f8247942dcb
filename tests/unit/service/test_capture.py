"""CaptureRedemption on fakes: the order's latest attempt, under its customer's lock."""

import pytest

from pricing.errors import HoldReleased, OrderNotFound
from pricing.order import RedemptionState
from tests.unit.service.support import Calls, P


def test_a_hold_becomes_spent_once() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=600)
    assert calls.capture("o1").state is RedemptionState.APPLIED
    assert calls.captured() == 300
    again = calls.capture("o1")  # already spent: answered as it is, nothing captured
    assert (again.state, calls.captured()) == (RedemptionState.APPLIED, 300)
    assert calls.ledger("alice") == [("GRANT", 500), ("HOLD", -300)]  # capture writes none
    assert calls.store.state.locked[-1] == (P, "alice")


def test_a_released_hold_cannot_be_captured() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=600)
    calls.reverse("o1")
    with pytest.raises(HoldReleased):
        calls.capture("o1")


def test_the_latest_attempt_is_captured() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=600)
    calls.reverse("o1")
    calls.apply("alice", "o1", 100, hold_seconds=600)
    captured = calls.capture("o1")
    assert (captured.attempt, captured.points, calls.captured()) == (2, 100, 100)


def test_an_order_without_a_redemption() -> None:
    calls = Calls()
    with pytest.raises(OrderNotFound):
        calls.capture("nobody")
    calls.accrue("alice", "o2")  # an order with only an accrual has nothing to capture
    with pytest.raises(OrderNotFound):
        calls.capture("o2")


def test_the_capture_answer_says_the_balance_after() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=600)
    calls.capture("o1")
    # 500 granted − 300 held = 200 spendable; capturing spends the held points, not these
    assert calls.capture_answer().balance_after == 200
    assert calls.capture_answer().captured == 300


@pytest.mark.parametrize(
    ("then", "answer"),
    [
        ("hold", RedemptionState.APPLIED),  # HELD → APPLIED, the one move capture makes
        ("apply", RedemptionState.APPLIED),  # already spent: answered as it is
        ("return one", RedemptionState.PARTIALLY_REVERSED),
        ("return all", RedemptionState.REVERSED),
        ("release", HoldReleased),
        # A lapse (EXPIRED, HOLD_EXPIRED) is written under the account lock by the real
        # store, which the fake does not do: tests/e2e/test_holds.py and
        # tests/integration/test_hold_races.py capture lapsed holds.
    ],
)
def test_capture_in_every_state_answers_or_refuses_by_name(then: str, answer: object) -> None:
    # Capture moves a redemption only from HELD: from any other state of the latest
    # attempt it answers as it is or refuses with its own reason, never InvalidTransition.
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=0 if then.startswith(("apply", "return")) else 600)
    if then == "return one":
        calls.reverse("o1", ("1", 1))
    elif then in ("return all", "release"):
        calls.reverse("o1")
    if isinstance(answer, RedemptionState):
        assert calls.capture("o1").state is answer
    else:
        with pytest.raises(answer):  # type: ignore[call-overload]
            calls.capture("o1")
