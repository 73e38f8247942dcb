"""The finance reports against the accounts, over random histories (docs/rules.md §8, §11).

Hypothesis drives grants of every source (spendable at once or later, with and without an
expiry), accruals, redemptions, holds that are captured or lapse, returns whole or in part
(clawbacks, debt), time moving forward over maturities, deadlines and expiries, and the
expiry job. After every step, at that instant:

* GetLiability equals the sum of GetAccount over every customer (spendable, pending, held,
  debt, by source, who holds something, who owes), and its expiry bands add up to the
  spendable points;
* the roll-forward from before the first call to now opens at 0 and closes at the sum of
  spendable − debt, and the identity opening + issued + reinstated − redeemed − expired −
  clawed_back − debt_incurred = closing holds;
* the roll-forward from an earlier instant the test looked at opens at the sum of
  spendable − debt the accounts showed then.
"""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import delete

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from loyalty.v1 import reporting_service_pb2 as pb
from server.service.expire import expire_points
from server.store.db import Database, create_database_engine
from server.store.schema import metadata
from tests.e2e.builders import (
    TIMEOUT,
    account,
    apply_request,
    cart,
    grant,
    hold_request,
    line,
    quote,
    reverse_request,
    ts,
)
from tests.support.server import ServerProcess, Stubs

PROGRAM = "stomatorg"
START = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
BEFORE = START - timedelta(seconds=1)
WHO = st.integers(0, 2)
CONTEXT: list[tuple[Stubs, Database]] = []  # set by the test before the machine runs


def totals(accounts: list[account_pb.GetAccountResponse]) -> dict[str, object]:
    by_source: dict[str, int] = {}
    for a in accounts:
        for source, points in a.balances_by_source.items():
            by_source[source] = by_source.get(source, 0) + points
    return {
        "spendable": sum(a.spendable_points for a in accounts),
        "pending": sum(a.pending_points for a in accounts),
        "held": sum(a.held_points for a in accounts),
        "debt": sum(a.debt_points for a in accounts),
        "by_source": {s: p for s, p in by_source.items() if p},
        "customers": sum(1 for a in accounts if a.spendable_points + a.pending_points
                         + a.held_points),
        "in_debt": sum(1 for a in accounts if a.debt_points),
    }  # fmt: skip


class LiabilityModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stubs, self.db = CONTEXT[0]
        with self.db.engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(delete(table))
        tag = uuid.uuid4().hex[:8]
        self.customers = [f"c{i}-{tag}" for i in range(3)]
        self.orders: list[tuple[str, int, bool]] = []  # (order id, units, held)
        self.now = START
        self.seen: list[tuple[datetime, int]] = []  # (instant, Σ spendable − debt then)
        self.n = 0

    def order_id(self) -> str:
        self.n += 1
        return f"o{self.n}-{self.customers[0]}"

    @rule(
        who=WHO,
        points=st.integers(1, 500),
        source=st.sampled_from(["loyalty", "promo", "action"]),
        later=st.one_of(st.none(), st.integers(1, 24 * 10)),
        lasts=st.one_of(st.none(), st.integers(1, 24 * 60)),
    )
    def grant(
        self, who: int, points: int, source: str, later: int | None, lasts: int | None
    ) -> None:
        available = None if later is None else self.now + timedelta(hours=later)
        expires = None
        if lasts is not None:
            expires = (available or self.now) + timedelta(hours=lasts)
        grant(self.stubs, PROGRAM, self.customers[who], points, source, as_of=self.now,
              available_at=available, expires_at=expires)  # fmt: skip

    @rule(who=WHO, units=st.integers(1, 3), roubles=st.integers(100, 20_000))
    def accrue(self, who: int, units: int, roubles: int) -> None:
        order = self.order_id()
        self.stubs.account.AccrueOrder(
            account_pb.AccrueOrderRequest(
                request_id=f"accrue-{order}", program_id=PROGRAM,
                customer_id=self.customers[who], order_id=order,
                cart=cart(line("l", units, roubles * 100)), delivered_at=ts(self.now),
                as_of=ts(self.now),
            ),
            timeout=TIMEOUT,
        )  # fmt: skip
        self.orders.append((order, units, False))

    @rule(
        who=WHO,
        ask=st.integers(1, 400),
        units=st.integers(1, 3),
        hold=st.one_of(st.none(), st.integers(60, 30 * 24 * 3600)),
    )
    def spend(self, who: int, ask: int, units: int, hold: int | None) -> None:
        basket = cart(line("l", units, 500_000))
        customer = self.customers[who]
        most = quote(self.stubs, PROGRAM, customer, basket, as_of=self.now).options[0].max_points
        points = min(ask, most)
        if not points:
            return
        order = self.order_id()
        if hold is None:
            request = apply_request(PROGRAM, customer, order, basket, points, as_of=self.now)
        else:
            request = hold_request(PROGRAM, customer, order, basket, points, hold_seconds=hold,
                                   as_of=self.now)  # fmt: skip
        self.stubs.redemption.ApplyRedemption(request, timeout=TIMEOUT)
        self.orders.append((order, units, hold is not None))

    @rule(pick=st.integers(0, 10**6), whole=st.booleans())
    def give_back(self, pick: int, whole: bool) -> None:
        if not self.orders:
            return
        order, _, _ = self.orders[pick % len(self.orders)]
        lines = () if whole else (("l", 1),)
        try:
            self.stubs.redemption.ReverseRedemption(
                reverse_request(PROGRAM, order, *lines, as_of=self.now), timeout=TIMEOUT
            )
        except grpc.RpcError as error:  # nothing left to return: refused, nothing changed
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error

    @rule(pick=st.integers(0, 10**6))
    def capture(self, pick: int) -> None:
        held = [order for order, _, is_hold in self.orders if is_hold]
        if not held:
            return
        request = pb_capture(held[pick % len(held)], self.now)
        try:
            self.stubs.redemption.CaptureRedemption(request, timeout=TIMEOUT)
        except grpc.RpcError as error:  # lapsed, released or returned meanwhile
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error

    @rule(hours=st.one_of(st.integers(1, 72), st.sampled_from([24 * 7, 24 * 30, 24 * 60])))
    def advance(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule()
    def expiry_job(self) -> None:
        expire_points(self.db, now=self.now)

    @invariant()
    def reports_match_the_accounts(self) -> None:
        at = self.now
        accounts = [account(self.stubs, PROGRAM, c, as_of=at) for c in self.customers]
        want = totals(accounts)
        got = self.stubs.reporting.GetLiability(
            pb.GetLiabilityRequest(program_id=PROGRAM, as_of=ts(at)), timeout=TIMEOUT
        )
        assert {
            "spendable": got.spendable_points, "pending": got.pending_points,
            "held": got.held_points, "debt": got.debt_points, "by_source": dict(got.by_source),
            "customers": got.customers, "in_debt": got.customers_in_debt,
        } == want  # fmt: skip
        assert sum(b.points for b in got.expiry_bands) == got.spendable_points
        net = got.spendable_points - got.debt_points
        whole = self.roll(BEFORE, at)
        assert (whole.opening_points, whole.closing_points) == (0, net)
        for then, net_then in self.seen[:1] + self.seen[-1:]:
            if then < at:
                since = self.roll(then, at)
                assert (since.opening_points, since.closing_points) == (net_then, net)
        # What the accounts show at `at` now (a call at the same instant may have changed it).
        self.seen = [(then, n) for then, n in self.seen if then != at] + [(at, net)]

    def roll(self, start: datetime, end: datetime) -> pb.GetLiabilityRollForwardResponse:
        got = self.stubs.reporting.GetLiabilityRollForward(
            pb.GetLiabilityRollForwardRequest(
                program_id=PROGRAM, start_time=ts(start), end_time=ts(end), as_of=ts(self.now)
            ),
            timeout=TIMEOUT,
        )
        taken = got.redeemed_points + got.expired_points + got.clawed_back_points
        moved = sum(got.issued.values()) + got.reinstated_points - taken - got.debt_incurred_points
        assert got.opening_points + moved == got.closing_points
        assert sum(c.expired_points for c in got.cohorts) == got.expired_points
        assert sum(c.redeemed_points for c in got.cohorts) == got.redeemed_points
        return got


def pb_capture(order: str, at: datetime) -> redemption_pb.CaptureRedemptionRequest:
    return redemption_pb.CaptureRedemptionRequest(
        request_id=f"capture-{order}-{at.timestamp()}", program_id=PROGRAM, order_id=order,
        as_of=ts(at),
    )  # fmt: skip


@pytest.fixture(scope="module")
def context(server: ServerProcess, db_url: str) -> Iterator[tuple[Stubs, Database]]:
    engine = create_database_engine(db_url, pool_size=1)
    yield server.stubs(), Database(engine)
    engine.dispose()


@pytest.mark.timeout(1200)
def test_the_reports_agree_with_the_accounts_over_random_histories(
    context: tuple[Stubs, Database],
) -> None:
    CONTEXT[:] = [context]
    try:
        run_state_machine_as_test(
            LiabilityModel,
            settings=settings(
                max_examples=8,
                stateful_step_count=15,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                print_blob=True,
            ),
        )
    finally:
        CONTEXT.clear()
