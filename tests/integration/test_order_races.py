"""One order, two customers, at once, on PostgreSQL over a real server (docs/rules.md §6, §7).

Before issue 12 an order could be accrued by a customer other than the one who spent
on it, and reversing it then clawed that accrual back through the spender's account:
points lost, and under concurrency `INTERNAL` (a bucket CHECK violated). An order now
belongs to the customer of its first call; every call naming it with another customer
is FAILED_PRECONDITION / ORDER_CUSTOMER_MISMATCH, and a return only ever works on the
owner's account.

Program `stomatorg`, base tier (3 % cap, 3 % earn), `action` points (never expire),
every call at `AS_OF`; accruals are delivered at `AS_OF`, so they pend for 7 days and no
customer's tier moves. The ledger invariants (`reconcile`) are checked after each test.
"""

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import grpc
import pytest

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import redemption_pb2
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from tests.integration.common import (
    PROGRAM,
    RPC_TIMEOUT,
    Ids,
    Outcome,
    cart,
    failure,
    fire_together,
    grant_request,
    ts,
)
from tests.support.server import Stubs

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

AS_OF = datetime(2033, 2, 1, 10, 0, tzinfo=UTC)
MATURED = AS_OF + timedelta(days=7)  # every accrual here is delivered at AS_OF
PAIRS, PAIRS_PER_ROUND = 100, 10
# One line of 10,000 ₽: base 1,000,000 minor, cap 3 % = 30,000 minor = 300 points.
ORDER = cart(("g", 1, 1_000_000))
# B's own order, 20,000 ₽: cap 600 points, more than B's 400.
OWN = cart(("g", 1, 2_000_000))
MISMATCH = (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_CUSTOMER_MISMATCH")
INTERNAL_OR_UNKNOWN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


@pytest.fixture(scope="module")
def backend() -> str:
    return "postgres"  # row locks and concurrent transactions: the production backend


# ---- requests ------------------------------------------------------------------------


def _apply(
    stubs: Stubs, customer: Ids, order: str, request: str, basket: Any, points: int
) -> redemption_pb.ApplyRedemptionResponse:
    return stubs.redemption.ApplyRedemption(
        redemption_pb.ApplyRedemptionRequest(
            request_id=customer.request(request),
            program_id=PROGRAM,
            customer_id=customer.customer,
            order_id=order,
            cart=basket,
            points=points,
            as_of=ts(AS_OF),
        ),
        timeout=RPC_TIMEOUT,
    )


def _accrue(
    stubs: Stubs, customer: Ids, order: str, request: str
) -> account_pb.AccrueOrderResponse:
    return stubs.account.AccrueOrder(
        account_pb.AccrueOrderRequest(
            request_id=customer.request(request),
            program_id=PROGRAM,
            customer_id=customer.customer,
            order_id=order,
            cart=ORDER,
            delivered_at=ts(AS_OF),
            as_of=ts(AS_OF),
        ),
        timeout=RPC_TIMEOUT,
    )


def _reverse(
    stubs: Stubs, customer: Ids, order: str, request: str
) -> redemption_pb.ReverseRedemptionResponse:
    return stubs.redemption.ReverseRedemption(
        redemption_pb.ReverseRedemptionRequest(
            request_id=customer.request(request),
            program_id=PROGRAM,
            order_id=order,
            reason="returned",
            as_of=ts(AS_OF),
        ),
        timeout=RPC_TIMEOUT,
    )


def _grant(stubs: Stubs, customer: Ids, points: int) -> None:
    stubs.account.GrantPoints(
        grant_request(customer, points=points, as_of=AS_OF, source="action"), timeout=RPC_TIMEOUT
    )


def _points(stubs: Stubs, customer: Ids, at: datetime) -> tuple[int, int, int, int]:
    """(spendable, pending, held, debt) at `at`."""
    seen = stubs.account.GetAccount(
        account_pb.GetAccountRequest(
            program_id=PROGRAM, customer_id=customer.customer, as_of=ts(at)
        ),
        timeout=RPC_TIMEOUT,
    )
    return seen.spendable_points, seen.pending_points, seen.held_points, seen.debt_points


def _ledger_sum(stubs: Stubs, customer: Ids, at: datetime) -> int:
    total, token = 0, ""
    while True:
        page = stubs.account.ListLedgerEntries(
            account_pb.ListLedgerEntriesRequest(
                program_id=PROGRAM,
                customer_id=customer.customer,
                page_size=100,
                page_token=token,
                as_of=ts(at),
            ),
            timeout=RPC_TIMEOUT,
        )
        total += sum(e.points for e in page.entries)
        token = page.next_page_token
        if not token:
            return total


def _no_internal(outcomes: list[Outcome[Any]]) -> None:
    codes = Counter(o.error.code() for o in outcomes if o.error is not None)
    assert not INTERNAL_OR_UNKNOWN & set(codes), f"INTERNAL/UNKNOWN answered: {codes}"


# ---- reverse racing the other customer's spends and accruals ---------------------------


def test_a_reversal_racing_another_customers_calls_on_the_order_loses_no_point(
    stubs: Stubs,
) -> None:
    """100 pairs, 10 at a time. A spends 300 of 500 on her order (and, in even pairs, has
    it accrued: 1,000,000 − 30,000 = 970,000 × 3 % = 29,100 minor = 291 pending). B has
    400. Released together: A's order reversed whole; B accrues A's order, spends 100 on
    it, and spends all his 400 on his own order.

    Whatever the interleaving: the reversal gives A her 300 back and takes back the 291
    (even pairs) from her own pending bucket: 200 + 300 = 500 spendable, 0 pending; B's
    two calls on A's order are ORDER_CUSTOMER_MISMATCH; B's own spend leaves him 0.
    """
    pairs = [(Ids(f"race-a{i}"), Ids(f"race-b{i}")) for i in range(PAIRS)]
    for i, (alice, bob) in enumerate(pairs):
        _grant(stubs, alice, 500)
        _grant(stubs, bob, 400)
        spent = _apply(stubs, alice, alice.order(), "spend", ORDER, 300)
        assert spent.balance_after == 200
        if i % 2 == 0:
            assert _accrue(stubs, alice, alice.order(), "accrue").points == 291

    every: list[Outcome[Any]] = []
    for start in range(0, PAIRS, PAIRS_PER_ROUND):
        calls: list[Callable[[], Any]] = []
        for alice, bob in pairs[start : start + PAIRS_PER_ROUND]:
            mine = alice.order()
            calls += [
                lambda a=alice, o=mine: _reverse(stubs, a, o, "reverse"),
                lambda b=bob, o=mine: _accrue(stubs, b, o, "accrue-theirs"),
                lambda b=bob, o=mine: _apply(stubs, b, o, "spend-theirs", ORDER, 100),
                lambda b=bob: _apply(stubs, b, b.order(), "spend-own", OWN, 400),
            ]
        outcomes = fire_together(calls)
        every += outcomes
        for n, (alice, _) in enumerate(pairs[start : start + PAIRS_PER_ROUND]):
            reversed_, accrued, spent_theirs, spent_own = outcomes[4 * n : 4 * n + 4]
            clawed = 291 if (start + n) % 2 == 0 else 0
            assert reversed_.value is not None, reversed_.error
            back = reversed_.value
            assert (back.points_returned, back.points_clawed_back, back.debt_points) == (
                300,
                clawed,
                0,
            ), alice.customer
            assert back.balance_after == 500
            assert back.redemption.state == redemption_pb2.REDEMPTION_STATE_REVERSED
            for refused in (accrued, spent_theirs):
                assert refused.error is not None, refused.value
                assert failure(refused.error) == MISMATCH
            assert spent_own.value is not None, spent_own.error
            assert spent_own.value.balance_after == 0
    _no_internal(every)

    # Nothing lost, nothing moved between customers, now and once the accruals matured.
    for alice, bob in pairs:
        for at in (AS_OF, MATURED):
            assert _points(stubs, alice, at) == (500, 0, 0, 0), alice.customer
            assert _points(stubs, bob, at) == (0, 0, 0, 0), bob.customer
        # A: 500 − 300 + 300 (+ 291 − 291) = 500; B: 400 − 400 = 0.
        assert _ledger_sum(stubs, alice, MATURED) == 500
        assert _ledger_sum(stubs, bob, MATURED) == 0


# ---- two customers' first calls on one order at once ------------------------------------


def test_when_two_customers_name_a_new_order_at_once_the_first_owns_it(stubs: Stubs) -> None:
    """100 new orders, 10 at a time: A spends 300 on the order while B accrues it
    (1,000,000 × 3 % = 30,000 minor = 300 pending: nothing was spent by B). Exactly one
    wins and owns the order; the other is ORDER_CUSTOMER_MISMATCH. Then the owner's
    reversal races the loser's retry of the same call (a new request id): the retry is
    refused again, and the reversal undoes the winner's call on the winner's account only.
    """
    pairs = [(Ids(f"own-a{i}"), Ids(f"own-b{i}"), Ids("own").order(i)) for i in range(PAIRS)]
    for alice, bob, _ in pairs:
        _grant(stubs, alice, 500)
        _grant(stubs, bob, 400)

    won: Counter[str] = Counter()
    every: list[Outcome[Any]] = []
    for start in range(0, PAIRS, PAIRS_PER_ROUND):
        batch = pairs[start : start + PAIRS_PER_ROUND]
        firsts = fire_together(
            [
                call
                for alice, bob, order in batch
                for call in (
                    lambda a=alice, o=order: _apply(stubs, a, o, "spend", ORDER, 300),
                    lambda b=bob, o=order: _accrue(stubs, b, o, "accrue"),
                )
            ]
        )
        every += firsts
        seconds: list[Callable[[], Any]] = []
        for n, (alice, bob, order) in enumerate(batch):
            spent, accrued = firsts[2 * n], firsts[2 * n + 1]
            assert spent.ok != accrued.ok, (spent, accrued)  # exactly one owner
            loser = spent if not spent.ok else accrued
            assert loser.error is not None and failure(loser.error) == MISMATCH
            if spent.ok:
                won["spender"] += 1
                owner, retry = alice, partial(_accrue, stubs, bob, order, "again")
            else:
                won["accruer"] += 1
                owner, retry = bob, partial(_apply, stubs, alice, order, "again", ORDER, 300)
            seconds += [partial(_reverse, stubs, owner, order, "reverse"), retry]
        thens = fire_together(seconds)
        every += thens
        for n in range(len(batch)):
            back, retried = thens[2 * n], thens[2 * n + 1]
            assert back.value is not None, back.error
            assert retried.error is not None and failure(retried.error) == MISMATCH
            if firsts[2 * n].ok:  # A spent 300: they come back; she never accrued
                assert (back.value.points_returned, back.value.points_clawed_back) == (300, 0)
                assert back.value.balance_after == 500
            else:  # B's 300 pending leave his own bucket; nothing was spent
                assert not back.value.HasField("redemption")
                assert (back.value.points_returned, back.value.points_clawed_back) == (0, 300)
                assert back.value.balance_after == 400
            assert back.value.debt_points == 0
    _no_internal(every)
    assert sum(won.values()) == PAIRS

    for alice, bob, _ in pairs:
        for at in (AS_OF, MATURED):
            assert _points(stubs, alice, at) == (500, 0, 0, 0), alice.customer
            assert _points(stubs, bob, at) == (400, 0, 0, 0), bob.customer
        assert _ledger_sum(stubs, alice, MATURED) == 500
        assert _ledger_sum(stubs, bob, MATURED) == 400
