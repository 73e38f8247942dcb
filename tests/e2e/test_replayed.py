"""A replayed mutation is marked: trailing metadata `loyalty-replayed: true` (docs/rules.md §7).

Only an answer served from the idempotency record carries it; the first answer, any
other call, and a read never do. The Python clients report it through `CallInfo`.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from loyalty.client import AsyncLoyaltyClient, CallInfo, LoyaltyClient, parse_cart
from loyalty.v1 import account_service_pb2 as account_pb
from tests.e2e.builders import (
    T0,
    TIMEOUT,
    accrue_request,
    apply_request,
    capture_request,
    days,
    grant,
    hold_request,
    new_id,
    reverse_request,
    ts,
)
from tests.support.server import ROOT, ServerProcess, Stubs

KEY = ("loyalty-replayed", "true")
CART = parse_cart((ROOT / "examples" / "carts" / "two-drills.json").read_text())


def trailing(call: Callable[..., Any], request: object) -> tuple[tuple[str, str], ...]:
    _, outcome = call.with_call(request, timeout=TIMEOUT)
    return tuple(outcome.trailing_metadata() or ())


def twice(call: Callable[..., Any], request: object) -> tuple[bool, bool]:
    """Whether the first and the second answer to the same request were marked replayed."""
    return KEY in trailing(call, request), KEY in trailing(call, request)


def test_each_mutation_is_marked_on_its_replay_only(stubs: Stubs) -> None:
    customer, applied, held = new_id("c"), new_id("o"), new_id("o")
    grant_once = account_pb.GrantPointsRequest(
        request_id=new_id("g"), program_id="stomatorg", customer_id=customer, points=900,
        source="loyalty", as_of=ts(T0),
    )  # fmt: skip
    assert twice(stubs.account.GrantPoints, grant_once) == (False, True)
    apply = apply_request("stomatorg", customer, applied, CART, 300)
    assert twice(stubs.redemption.ApplyRedemption, apply) == (False, True)
    reverse = reverse_request("stomatorg", applied, ("1", 1))
    assert twice(stubs.redemption.ReverseRedemption, reverse) == (False, True)
    hold = hold_request("stomatorg", customer, held, CART, 300, hold_seconds=600)
    assert twice(stubs.redemption.ApplyRedemption, hold) == (False, True)
    capture = capture_request("stomatorg", held, as_of=T0)
    assert twice(stubs.redemption.CaptureRedemption, capture) == (False, True)
    accrue = accrue_request("stomatorg", customer, new_id("o"), CART, delivered_at=T0)
    assert twice(stubs.account.AccrueOrder, accrue) == (False, True)
    # a second capture with a new request id is answered anew (already spent), not replayed
    assert KEY not in trailing(
        stubs.redemption.CaptureRedemption, capture_request("stomatorg", held, as_of=T0)
    )
    read = account_pb.GetAccountRequest(program_id="stomatorg", customer_id=customer, as_of=ts(T0))
    assert twice(stubs.account.GetAccount, read) == (False, False)


def test_the_blocking_client_reports_a_replay(server: ServerProcess, stubs: Stubs) -> None:
    customer, key = new_id("c"), new_id("g")
    with LoyaltyClient(server.address) as client:
        first, again = CallInfo(), CallInfo()
        answers = [
            client.grant_points(program_id="stomatorg", customer_id=customer, points=500,
                                source="loyalty", request_id=key, as_of=T0, info=info)
            for info in (first, again)
        ]  # fmt: skip
    assert (first.replayed, again.replayed) == (False, True)
    assert KEY in again.trailing_metadata
    assert answers[0] == answers[1] and answers[1].balance_after == 500


def test_the_asyncio_client_reports_a_replay(server: ServerProcess) -> None:
    customer, key = new_id("c"), new_id("g")

    async def grant_twice() -> tuple[bool, bool]:
        async with AsyncLoyaltyClient(server.address) as client:
            infos = (CallInfo(), CallInfo())
            for info in infos:
                await client.grant_points(program_id="stomatorg", customer_id=customer,
                                          points=70, source="promo", request_id=key,
                                          as_of=days(1), info=info)  # fmt: skip
            return infos[0].replayed, infos[1].replayed

    assert asyncio.run(grant_twice()) == (False, True)


def test_a_call_without_info_still_answers(stubs: Stubs) -> None:
    assert grant(stubs, "stomatorg", new_id("c"), 5, "promo").balance_after == 5
