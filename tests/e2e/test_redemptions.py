"""ApplyRedemption, ReverseRedemption and GetRedemption over a real server.

Buckets are spent first-expiring-first (never-expiring last) and refilled latest-expiring
first (docs/rules.md §4, §6); returns follow the cumulative floor floor(P × K / n).
1 point = 100 minor.
"""

from datetime import UTC, datetime

import grpc

from loyalty.v1 import redemption_pb2 as r
from loyalty.v1 import redemption_service_pb2 as pb
from tests.e2e.builders import (
    SERVICE,
    T0,
    TIMEOUT,
    account,
    allocations,
    apply_request,
    cart,
    days,
    grant,
    hours,
    line,
    new_id,
    reverse_request,
    when,
)
from tests.e2e.rpc_errors import expect_error
from tests.support.server import Stubs

APRIL_1 = datetime(2026, 4, 1, tzinfo=UTC)
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)
T0_PLUS_90_DAYS = datetime(2026, 5, 30, 9, 0, tzinfo=UTC)


def get_redemption(stubs: Stubs, program_id: str, order_id: str) -> r.Redemption:
    return stubs.redemption.GetRedemption(
        pb.GetRedemptionRequest(program_id=program_id, order_id=order_id), timeout=TIMEOUT
    ).redemption


def sources(stubs: Stubs, program_id: str, customer_id: str, at: datetime) -> dict[str, int]:
    return dict(account(stubs, program_id, customer_id, as_of=at).balances_by_source)


def test_apply_allocates_spends_first_expiring_first_and_reverses_by_line(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, "stomatorg", customer, 100, "action")  # never expires
    grant(stubs, "stomatorg", customer, 200, "promo", expires_at=MAY_1)
    grant(stubs, "stomatorg", customer, 150, "loyalty")  # default: T0 + 90 days
    grant(stubs, "stomatorg", customer, 50, "promo", expires_at=APRIL_1)
    before = account(stubs, "stomatorg", customer)
    assert before.spendable_points == 500
    assert dict(before.balances_by_source) == {"action": 100, "promo": 250, "loyalty": 150}
    assert (when(before.next_expiry.expires_at), before.next_expiry.points) == (APRIL_1, 50)

    # x: 3 × 50,000.00 = 15,000,000; y: 1 × 35,000.00 = 3,500,000; z: 2 × 7,500.00 = 1,500,000
    # base 20,000,000 minor → 3 % = 600,000 → 6,000 points; balance 500 → 333 is allowed
    the_cart = cart(line("x", 3, 5_000_000), line("y", 1, 3_500_000), line("z", 2, 750_000))
    applied = stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, order, the_cart, 333), timeout=TIMEOUT
    )
    redemption = applied.redemption
    assert redemption.points == 333
    assert redemption.discount_minor == 33_300
    assert redemption.state == r.REDEMPTION_STATE_APPLIED
    assert redemption.points_reversed == 0
    assert (redemption.order_id, redemption.customer_id) == (order, customer)
    assert redemption.program_id == "stomatorg"
    assert redemption.program_version == 1
    assert when(redemption.created_at) == T0
    assert not redemption.HasField("hold_expires_at")
    # 333 × 15/20 = 249.75, × 3.5/20 = 58.275, × 1.5/20 = 24.975 → floors 249 + 58 + 24 = 331;
    # the 2 left go to the largest remainders: z (.975), then x (.75)
    assert allocations(redemption) == [("x", 250, 25_000), ("y", 58, 5_800), ("z", 25, 2_500)]
    assert applied.balance_after == 500 - 333
    # spent first-expiring-first: promo 50 (Apr 1), promo 200 (May 1), loyalty 83 of 150
    # (May 30); action (never expires) untouched
    after = account(stubs, "stomatorg", customer)
    assert after.spendable_points == 167
    assert dict(after.balances_by_source) == {"loyalty": 67, "action": 100}
    assert (when(after.next_expiry.expires_at), after.next_expiry.points) == (T0_PLUS_90_DAYS, 67)
    assert get_redemption(stubs, "stomatorg", order) == redemption

    # return 1 of 3 units of x: floor(250 × 1 / 3) = 83, to the latest-expiring debit (loyalty)
    first = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", order, ("x", 1), as_of=days(1)), timeout=TIMEOUT
    )
    assert first.points_returned == 83
    assert (first.points_clawed_back, first.debt_points) == (0, 0)
    assert first.redemption.state == r.REDEMPTION_STATE_PARTIALLY_REVERSED
    assert first.redemption.points_reversed == 83
    assert first.balance_after == 167 + 83
    assert sources(stubs, "stomatorg", customer, days(1)) == {"loyalty": 150, "action": 100}

    # return the only unit of y: its 58 points; loyalty is full again → the May 1 promo bucket
    second = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", order, ("y", 1), as_of=days(1)), timeout=TIMEOUT
    )
    assert second.points_returned == 58
    assert second.redemption.points_reversed == 141
    assert second.balance_after == 250 + 58
    assert sources(stubs, "stomatorg", customer, days(1)) == {
        "loyalty": 150,
        "promo": 58,
        "action": 100,
    }

    # everything that remains: x 250 − 83 = 167, z 25 → 192 = May 1 promo 142 + Apr 1 promo 50
    rest = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", order, as_of=days(2)), timeout=TIMEOUT
    )
    assert rest.points_returned == 192
    assert rest.redemption.state == r.REDEMPTION_STATE_REVERSED
    assert rest.redemption.points_reversed == 333
    assert rest.balance_after == 500
    assert allocations(rest.redemption) == allocations(redemption)  # the allocation stays
    assert sources(stubs, "stomatorg", customer, days(2)) == {
        "action": 100,
        "promo": 250,
        "loyalty": 150,
    }
    assert get_redemption(stubs, "stomatorg", order) == rest.redemption


def test_cumulative_floor_gives_back_3_3_4_to_latest_expiring_first(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, "stomatorg", customer, 6, "loyalty", expires_at=datetime(2026, 4, 10, tzinfo=UTC))
    grant(stubs, "stomatorg", customer, 10, "action")
    # 3 × 1,000.00 = 300,000 minor → 3 % = 90 points; 10 points over 3 units
    the_cart = cart(line("m", 3, 100_000))
    applied = stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, order, the_cart, 10), timeout=TIMEOUT
    )
    # spent: loyalty 6 (expires first), then action 4
    assert applied.balance_after == 6
    assert sources(stubs, "stomatorg", customer, T0) == {"action": 6}

    expected = [
        # (points back, points_reversed, state, by source) after returning 1, 2, 3 units:
        # floor(10 × 1/3) = 3; floor(10 × 2/3) = 6 → 3; 10 → 4. Refills go latest-expiring
        # first: action (never expires) takes its 4 back first, then loyalty its 6.
        (3, 3, r.REDEMPTION_STATE_PARTIALLY_REVERSED, {"action": 9}),
        (3, 6, r.REDEMPTION_STATE_PARTIALLY_REVERSED, {"action": 10, "loyalty": 2}),
        (4, 10, r.REDEMPTION_STATE_REVERSED, {"action": 10, "loyalty": 6}),
    ]
    for step, (back, reversed_so_far, state, by_source) in enumerate(expected, start=1):
        response = stubs.redemption.ReverseRedemption(
            reverse_request("stomatorg", order, ("m", 1), as_of=hours(step)), timeout=TIMEOUT
        )
        assert response.points_returned == back
        assert response.redemption.points_reversed == reversed_so_far
        assert response.redemption.state == state
        assert response.balance_after == sum(by_source.values())
        assert sources(stubs, "stomatorg", customer, hours(step)) == by_source


def test_points_returned_to_an_expired_bucket_stay_expired(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, "stomatorg", customer, 10, "loyalty", expires_at=days(1))
    grant(stubs, "stomatorg", customer, 20, "action")
    # 1 × 1,000.00 = 100,000 → 3 % = 30 points; spend 15: loyalty 10 (expires first), action 5
    applied = stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, order, cart(line("a", 1, 100_000)), 15),
        timeout=TIMEOUT,
    )
    assert applied.balance_after == 15
    # two days later the loyalty bucket has expired; all 15 go back, action 5 + loyalty 10
    reversed_ = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", order, as_of=days(2)), timeout=TIMEOUT
    )
    assert reversed_.points_returned == 15
    assert reversed_.redemption.state == r.REDEMPTION_STATE_REVERSED
    assert reversed_.balance_after == 20  # the 10 loyalty points went back expired
    later = account(stubs, "stomatorg", customer, as_of=days(2))
    assert later.spendable_points == 20
    assert dict(later.balances_by_source) == {"action": 20}
    assert not later.HasField("next_expiry")


def test_denco_card_apply_limits_each_source_while_spending(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, "denco", customer, 300, "loyalty")  # default: 365 days
    grant(stubs, "denco", customer, 1_000, "promo", expires_at=APRIL_1)
    the_cart = cart(line("a", 1, 100_000))  # 1 × 1,000.00 RUB
    # without the card the maximum is 50 % → 500, and denco takes exactly the maximum
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("denco", customer, order, the_cart, 800),
        grpc.StatusCode.FAILED_PRECONDITION,
        "ALL_OR_NOTHING",
        metadata={"requested": "800", "maximum": "500"},
    )
    # with denco_card: loyalty 300 (≤ 99.99 %) + promo 500 (50 % of 100,000) = 800
    applied = stubs.redemption.ApplyRedemption(
        apply_request("denco", customer, order, the_cart, 800, payment_method="denco_card"),
        timeout=TIMEOUT,
    )
    assert applied.redemption.points == 800
    assert applied.redemption.discount_minor == 80_000
    assert allocations(applied.redemption) == [("a", 800, 80_000)]
    # promo expires first but may give only 500; loyalty gives its 300
    assert applied.balance_after == 500
    after = account(stubs, "denco", customer)
    assert dict(after.balances_by_source) == {"promo": 500}
    assert (when(after.next_expiry.expires_at), after.next_expiry.points) == (APRIL_1, 500)


def test_redemption_lists_excluded_lines_with_zero_points(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, "stomatorg", customer, 1_000, "action")
    the_cart = cart(
        line("a", 1, 1_000_000),  # eligible: 3 % of 1,000,000 = 300 points at most
        line("b", 1, 500_000, tags=["no_points"]),
        line("c", 1, 20_000, kind=SERVICE),
    )
    applied = stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, order, the_cart, 300), timeout=TIMEOUT
    )
    assert allocations(applied.redemption) == [("a", 300, 30_000), ("b", 0, 0), ("c", 0, 0)]
    assert applied.balance_after == 700
