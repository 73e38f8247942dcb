"""Concurrent calls over a real server, on PostgreSQL and on SQLite (docs/rules.md §6, §7).

Every call carries `as_of = AS_OF`, so maturity, expiry and the tier are
exact; the ledger invariants are checked on the database after each test.
Program `stomatorg`, base tier: the most an order can take is 3 % of its
eligible base, and 1 point = 1 rouble = 100 minor.
"""

from collections import Counter
from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy import Table, func, select

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import redemption_pb2
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from server.store.schema import buckets, idempotency_keys, ledger_entries, redemptions
from tests.integration.common import (
    PROGRAM,
    RPC_TIMEOUT,
    Ids,
    account_request,
    apply_request,
    cart,
    error_info,
    failure,
    fetch,
    fire_together,
    grant_request,
    raw_method,
    reverse_request,
    ts,
)
from tests.support.server import ServerProcess, Stubs

pytestmark = pytest.mark.timeout(120)

AS_OF = datetime(2031, 3, 3, 10, 0, tzinfo=UTC)

# One line of 100,000 RUB: eligible base 10,000,000 minor, base-tier cap 3 % =
# 300,000 minor = 3,000 points, and the line itself could take 100,000 points.
# Every balance below is far under 3,000, so an order's maximum is exactly
# the customer's spendable balance at that moment.
BIG_CART = cart(("line-1", 1, 10_000_000))


def _spendable(stubs: Stubs, ids: Ids) -> int:
    return stubs.account.GetAccount(
        account_request(ids, as_of=AS_OF), timeout=RPC_TIMEOUT
    ).spendable_points


def _grant(stubs: Stubs, ids: Ids, points: int) -> None:
    stubs.account.GrantPoints(grant_request(ids, points=points, as_of=AS_OF), timeout=RPC_TIMEOUT)


def _customer_rows(db_url: str, table: Table, ids: Ids) -> int:
    rows = fetch(
        db_url,
        select(func.count())
        .select_from(table)
        .where(table.c.program_id == PROGRAM, table.c.customer_id == ids.customer),
    )
    return int(rows[0][0])


def test_fifty_concurrent_applies_on_one_account_never_overspend(stubs: Stubs, db_url: str) -> None:
    ids = Ids("overspend")
    applies, spend, affordable, leftover = 50, 100, 20, 37
    # 2,037 points: enough for exactly 20 applies of 100 (20 × 100 = 2,000), not 21.
    # Each success lowers the balance by 100, so the maximum the service recomputes
    # is 2,037, 1,937, …, 137: each ≥ 100, each allowed. After the 20th the balance
    # is 37 < 100: every later apply asks 100 against a maximum of 37 and fails
    # FAILED_PRECONDITION / EXCEEDS_MAXIMUM (requested 100, maximum 37).
    _grant(stubs, ids, affordable * spend + leftover)

    def apply(n: int) -> redemption_pb.ApplyRedemptionResponse:
        request = apply_request(
            ids, order=n, request=f"apply-{n}", basket=BIG_CART, points=spend, as_of=AS_OF
        )
        return stubs.redemption.ApplyRedemption(request, timeout=RPC_TIMEOUT)

    outcomes = fire_together([lambda n=n: apply(n) for n in range(applies)])

    succeeded = [o.value for o in outcomes if o.value is not None]
    failed = [o.error for o in outcomes if o.error is not None]
    assert len(succeeded) == affordable
    assert len(failed) == applies - affordable
    for error in failed:
        assert failure(error) == (grpc.StatusCode.FAILED_PRECONDITION, "EXCEEDS_MAXIMUM")
        # Failures only start once the balance is below 100, i.e. exactly 37 left.
        assert dict(error_info(error).metadata) == {"requested": "100", "maximum": "37"}
    # The successes ran one after another on the locked account: their balances
    # after are 1,937, 1,837, …, 37, each exactly once.
    assert sorted(r.balance_after for r in succeeded) == [
        leftover + spend * i for i in range(affordable)
    ]
    assert all(r.redemption.points == spend for r in succeeded)
    assert all(r.redemption.discount_minor == spend * 100 for r in succeeded)
    assert len({r.redemption.redemption_id for r in succeeded}) == affordable

    assert _spendable(stubs, ids) == leftover
    assert _customer_rows(db_url, redemptions, ids) == affordable
    redeemed = fetch(
        db_url,
        select(func.count(), func.sum(ledger_entries.c.points)).where(
            ledger_entries.c.customer_id == ids.customer, ledger_entries.c.kind == "REDEMPTION"
        ),
    )[0]
    assert (redeemed[0], redeemed[1]) == (affordable, -affordable * spend)
    # Only the successes claimed their request ids; the failures rolled back with theirs.
    claimed = fetch(
        db_url,
        select(func.count()).where(idempotency_keys.c.request_id.like(f"req-{ids.tag}-apply-%")),
    )[0][0]
    assert claimed == affordable


def test_twenty_concurrent_applies_with_one_request_id_make_one_effect(
    server: ServerProcess, stubs: Stubs, db_url: str
) -> None:
    ids = Ids("same-apply")
    _grant(stubs, ids, 1_000)
    request = apply_request(
        ids, order="only", request="only", basket=BIG_CART, points=150, as_of=AS_OF
    )
    assert server.channel is not None
    call = raw_method(server.channel, "RedemptionService", "ApplyRedemption")

    outcomes = fire_together([lambda: call(request, timeout=RPC_TIMEOUT)] * 20)

    assert [o.error for o in outcomes if o.error is not None] == []
    answers = {o.value for o in outcomes}
    assert len(answers) == 1, "every caller must get the first answer, byte for byte"
    (answer,) = answers
    assert isinstance(answer, bytes)
    response = redemption_pb.ApplyRedemptionResponse.FromString(answer)
    assert response.redemption.points == 150
    assert response.redemption.order_id == ids.order("only")
    assert response.redemption.state == redemption_pb2.REDEMPTION_STATE_APPLIED
    assert response.balance_after == 850

    # One effect: one redemption, one debit in the ledger, 150 points gone once.
    assert _spendable(stubs, ids) == 850
    assert _customer_rows(db_url, redemptions, ids) == 1
    entries = fetch(
        db_url,
        select(ledger_entries.c.kind, ledger_entries.c.points).where(
            ledger_entries.c.customer_id == ids.customer
        ),
    )
    assert sorted((kind, points) for kind, points in entries) == [
        ("GRANT", 1_000),
        ("REDEMPTION", -150),
    ]
    assert (
        fetch(
            db_url,
            select(func.count()).where(
                idempotency_keys.c.program_id == PROGRAM,
                idempotency_keys.c.request_id == ids.request("only"),
            ),
        )[0][0]
        == 1
    )


def test_twenty_concurrent_grants_with_one_request_id_make_one_effect(
    server: ServerProcess, stubs: Stubs, db_url: str
) -> None:
    ids = Ids("same-grant")
    request = grant_request(ids, points=500, as_of=AS_OF, n="once")
    assert server.channel is not None
    call = raw_method(server.channel, "AccountService", "GrantPoints")

    outcomes = fire_together([lambda: call(request, timeout=RPC_TIMEOUT)] * 20)

    assert [o.error for o in outcomes if o.error is not None] == []
    answers = {o.value for o in outcomes}
    assert len(answers) == 1, "every caller must get the first answer, byte for byte"
    (answer,) = answers
    assert isinstance(answer, bytes)
    response = account_pb.GrantPointsResponse.FromString(answer)
    assert (response.points, response.balance_after, response.debt_points) == (500, 500, 0)

    assert _spendable(stubs, ids) == 500
    assert _customer_rows(db_url, buckets, ids) == 1
    assert _customer_rows(db_url, ledger_entries, ids) == 1


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_applies_for_one_order_redeem_it_once(
    stubs: Stubs, db_url: str, round_: int
) -> None:
    """Ten applies for the same order under different request ids: one wins.

    The balance (150) covers one apply of 100; had a loser planned against the
    balance left by the winner (50) it would answer EXCEEDS_MAXIMUM, but
    ORDER_ALREADY_REDEEMED comes first in docs/rules.md §7's order of errors. (A loser
    only sees a stale order check if it looked before the winner committed:
    a race, hence several rounds.)
    """
    ids = Ids(f"one-order-{round_}")
    _grant(stubs, ids, 150)

    def apply(n: int) -> redemption_pb.ApplyRedemptionResponse:
        request = apply_request(
            ids, order="shared", request=f"try-{n}", basket=BIG_CART, points=100, as_of=AS_OF
        )
        return stubs.redemption.ApplyRedemption(request, timeout=RPC_TIMEOUT)

    outcomes = fire_together([lambda n=n: apply(n) for n in range(10)])

    succeeded = [o.value for o in outcomes if o.value is not None]
    failed = [o.error for o in outcomes if o.error is not None]
    assert len(succeeded) == 1
    assert succeeded[0].balance_after == 50
    assert [failure(e) for e in failed] == [
        (grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_REDEEMED")
    ] * 9
    assert _spendable(stubs, ids) == 50
    assert _customer_rows(db_url, redemptions, ids) == 1


def test_ten_concurrent_partial_returns_give_back_exactly_what_was_spent(
    stubs: Stubs, db_url: str
) -> None:
    ids = Ids("returns")
    _grant(stubs, ids, 1_000)
    # Two lines of 1,000 RUB units: "a" 7 units (700,000 minor), "b" 3 units
    # (300,000 minor). Eligible base 1,000,000 minor, cap 3 % = 300 points.
    # 293 points split 7 : 3 by largest remainder: 205.1 → 205, 87.9 → 87,
    # the one point left goes to the larger remainder (b): a = 205, b = 88.
    basket = cart(("a", 7, 100_000), ("b", 3, 100_000))
    applied = stubs.redemption.ApplyRedemption(
        apply_request(ids, order="o", request="apply", basket=basket, points=293, as_of=AS_OF),
        timeout=RPC_TIMEOUT,
    )
    allocations = {a.line_id: a.points for a in applied.redemption.allocations}
    assert allocations == {"a": 205, "b": 88}
    assert applied.balance_after == 707

    def give_back(n: int, line_id: str) -> redemption_pb.ReverseRedemptionResponse:
        request = reverse_request(
            ids, order="o", request=f"return-{n}", lines=[(line_id, 1)], as_of=AS_OF
        )
        return stubs.redemption.ReverseRedemption(request, timeout=RPC_TIMEOUT)

    units = ["a"] * 7 + ["b"] * 3  # every unit of the order, one per call
    outcomes = fire_together([lambda n=n, u=u: give_back(n, u) for n, u in enumerate(units)])

    assert [o.error for o in outcomes if o.error is not None] == []
    results = [o.value for o in outcomes if o.value is not None]
    # After k of a line's n units are back, floor(P × k / n) points are back:
    # a (205 over 7): 29, 58, 87, 117, 146, 175, 205 → steps 29,29,29,30,29,29,30;
    # b (88 over 3): 29, 58, 88 → steps 29,29,30. The calls on one line run one
    # after another, so whatever their order, these are the amounts they return.
    by_line = {"a": Counter[int](), "b": Counter[int]()}
    for unit, result in zip(units, results, strict=True):
        by_line[unit][result.points_returned] += 1
    assert by_line == {"a": Counter({29: 5, 30: 2}), "b": Counter({29: 2, 30: 1})}
    assert sum(r.points_returned for r in results) == 293
    # Balances after were taken one after another: ten distinct values, the
    # last one (everything back) 1,000.
    assert len({r.balance_after for r in results}) == 10
    assert max(r.balance_after for r in results) == 1_000
    states = Counter(r.redemption.state for r in results)
    assert states == {
        redemption_pb2.REDEMPTION_STATE_PARTIALLY_REVERSED: 9,
        redemption_pb2.REDEMPTION_STATE_REVERSED: 1,
    }
    final = next(r for r in results if r.balance_after == 1_000)
    assert final.redemption.state == redemption_pb2.REDEMPTION_STATE_REVERSED

    stored = stubs.redemption.GetRedemption(
        redemption_pb.GetRedemptionRequest(
            program_id=PROGRAM, order_id=ids.order("o"), as_of=ts(AS_OF)
        ),
        timeout=RPC_TIMEOUT,
    ).redemption
    assert stored.state == redemption_pb2.REDEMPTION_STATE_REVERSED
    assert stored.points_reversed == stored.points == 293
    assert _spendable(stubs, ids) == 1_000

    # Nothing is left to return.
    with pytest.raises(grpc.RpcError) as raised:
        give_back(99, "a")
    assert failure(raised.value) == (grpc.StatusCode.FAILED_PRECONDITION, "EXCEEDS_REMAINING")
