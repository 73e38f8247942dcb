"""Idempotency (docs/rules.md §7): a replay returns the first answer and changes nothing.

"The same request" is every field but `as_of`; the same request_id with anything else is
ALREADY_EXISTS, reason IDEMPOTENCY_KEY_REUSED. Request ids are scoped to their program.
"""

import grpc

from loyalty.v1 import account_service_pb2 as a
from tests.e2e.builders import (
    T0,
    TIMEOUT,
    account,
    apply_request,
    cart,
    days,
    grant,
    hours,
    ledger,
    line,
    new_id,
    reverse_request,
    ts,
    when,
)
from tests.e2e.rpc_errors import expect_error
from tests.support.server import Stubs

REUSED = (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


def grant_request(customer: str, points: int, request_id: str, **fields: object) -> object:
    return a.GrantPointsRequest(
        request_id=request_id,
        program_id="stomatorg",
        customer_id=customer,
        points=points,
        source="promo",
        **fields,
    )


def ledger_size(stubs: Stubs, program_id: str, customer: str) -> int:
    return len(ledger(stubs, program_id, customer, as_of=days(30), page_size=1000).entries)


def test_grant_replay_returns_the_first_answer_even_at_another_as_of(stubs: Stubs) -> None:
    customer, request_id = new_id("c"), new_id("r")
    first = stubs.account.GrantPoints(
        grant_request(customer, 70, request_id, as_of=ts(T0)), timeout=TIMEOUT
    )
    assert (first.points, first.balance_after) == (70, 70)
    # a day later: the same request (as_of is not part of it) → the first answer, no effect;
    # re-run, it would have made a second bucket expiring a day later
    again = stubs.account.GrantPoints(
        grant_request(customer, 70, request_id, as_of=ts(days(1))), timeout=TIMEOUT
    )
    assert again == first
    response = account(stubs, "stomatorg", customer, as_of=days(1))
    assert response.spendable_points == 70
    # promo default expiry: T0 + 90 days, from the first call only
    assert (when(response.next_expiry.expires_at), response.next_expiry.points) == (days(90), 70)
    assert ledger_size(stubs, "stomatorg", customer) == 1

    failure = expect_error(
        stubs.account.GrantPoints,
        grant_request(customer, 71, request_id, as_of=ts(T0)),
        *REUSED,
        metadata={"request_id": request_id},
    )
    assert request_id in failure.message
    # another reason is another request, too
    expect_error(
        stubs.account.GrantPoints,
        grant_request(customer, 70, request_id, as_of=ts(T0), reason="other"),
        *REUSED,
    )
    assert account(stubs, "stomatorg", customer).spendable_points == 70


def test_apply_replay_returns_the_first_answer_and_spends_once(stubs: Stubs) -> None:
    customer, order, request_id = new_id("c"), new_id("o"), new_id("r")
    grant(stubs, "stomatorg", customer, 500, "action")
    the_cart = cart(line("a", 1, 1_000_000))  # 3 % → at most 300 points
    request = apply_request("stomatorg", customer, order, the_cart, 200, request_id=request_id)
    first = stubs.redemption.ApplyRedemption(request, timeout=TIMEOUT)
    assert first.balance_after == 300
    entries = ledger_size(stubs, "stomatorg", customer)

    later = apply_request(
        "stomatorg", customer, order, the_cart, 200, request_id=request_id, as_of=hours(5)
    )
    assert stubs.redemption.ApplyRedemption(later, timeout=TIMEOUT) == first
    assert stubs.redemption.ApplyRedemption(request, timeout=TIMEOUT) == first
    assert account(stubs, "stomatorg", customer).spendable_points == 300
    assert ledger_size(stubs, "stomatorg", customer) == entries

    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("stomatorg", customer, order, the_cart, 150, request_id=request_id),
        *REUSED,
        metadata={"request_id": request_id},
    )
    assert account(stubs, "stomatorg", customer).spendable_points == 300


def test_reverse_replay_returns_the_first_answer_and_gives_back_once(stubs: Stubs) -> None:
    customer, order, request_id = new_id("c"), new_id("o"), new_id("r")
    grant(stubs, "stomatorg", customer, 500, "action")
    the_cart = cart(line("a", 4, 250_000))  # 4 units, 3 % of 1,000,000 → at most 300
    stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, order, the_cart, 100), timeout=TIMEOUT
    )
    request = reverse_request("stomatorg", order, ("a", 1), request_id=request_id)
    first = stubs.redemption.ReverseRedemption(request, timeout=TIMEOUT)
    # floor(100 × 1 / 4) = 25 back: 400 + 25
    assert (first.points_returned, first.balance_after) == (25, 425)

    later = reverse_request("stomatorg", order, ("a", 1), request_id=request_id, as_of=days(1))
    assert stubs.redemption.ReverseRedemption(later, timeout=TIMEOUT) == first
    assert account(stubs, "stomatorg", customer).spendable_points == 425

    expect_error(
        stubs.redemption.ReverseRedemption,
        reverse_request("stomatorg", order, ("a", 2), request_id=request_id),
        *REUSED,
    )
    expect_error(
        stubs.redemption.ReverseRedemption,
        reverse_request("stomatorg", order, ("a", 1), request_id=request_id, reason="cancel"),
        *REUSED,
    )
    assert account(stubs, "stomatorg", customer).spendable_points == 425


def test_a_request_id_used_by_another_method_is_reused(stubs: Stubs) -> None:
    customer, request_id = new_id("c"), new_id("r")
    stubs.account.GrantPoints(
        grant_request(customer, 500, request_id, as_of=ts(T0)), timeout=TIMEOUT
    )
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request(
            "stomatorg",
            customer,
            new_id("o"),
            cart(line("a", 1, 100_000)),
            1,
            request_id=request_id,
        ),
        *REUSED,
    )
    assert account(stubs, "stomatorg", customer).spendable_points == 500


def test_request_ids_are_scoped_to_their_program(stubs: Stubs) -> None:
    customer, request_id = new_id("c"), new_id("r")
    stubs.account.GrantPoints(
        grant_request(customer, 10, request_id, as_of=ts(T0)), timeout=TIMEOUT
    )
    denco = stubs.account.GrantPoints(
        a.GrantPointsRequest(
            request_id=request_id,
            program_id="denco",
            customer_id=customer,
            points=25,
            source="loyalty",
            as_of=ts(T0),
        ),
        timeout=TIMEOUT,
    )
    assert (denco.points, denco.balance_after) == (25, 25)
    assert account(stubs, "stomatorg", customer).spendable_points == 10
    assert account(stubs, "denco", customer).spendable_points == 25
