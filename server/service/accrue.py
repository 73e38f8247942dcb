"""AccrueOrder: what a delivered order earns, pending until it matures (docs/rules.md §5, §6)."""

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pricing.accrual import Accrual, AccrualPlan, plan_accrual
from pricing.buckets import settle_matured
from pricing.errors import OrderAlreadyAccrued, OrderCustomerMismatch
from pricing.ledger import LedgerEntry
from pricing.order import Order
from pricing.program import Program, Tier
from pricing.quote import check_currency
from server.service import commands
from server.service.account_state import AccountState
from server.service.deps import Deps
from server.service.ports import NewBucket, UnitOfWork
from server.store.errors import DuplicateAccrual, DuplicateOrder


@dataclass(frozen=True)
class AccrueResult:
    points: int
    available_at: datetime
    expires_at: datetime | None


def accrue_order(
    deps: Deps,
    command: commands.AccrueOrder,
    *,
    now: datetime,
    render: Callable[[AccrueResult], bytes],
) -> bytes:
    program = deps.program(command.program_id)
    effect = functools.partial(_accrue, program=program, command=command, now=now)
    outcome = deps.once(
        "AccrueOrder", program.id, command.key, now=now, effect=effect, render=render
    )
    if outcome.result is not None:
        deps.metrics.accrued.labels(program.id).inc(outcome.result.points)
    return outcome.answer


def _accrue(
    uow: UnitOfWork, *, program: Program, command: commands.AccrueOrder, now: datetime
) -> AccrueResult:
    check_currency(program, command.cart)  # after the request id's claim (docs/rules.md §7)
    customer = command.customer_id
    state = uow.accounts.lock(program_id=program.id, customer_id=customer, now=now)
    order = uow.orders.get(program_id=program.id, order_id=command.order_id)
    if order is not None:
        order.check_accrual(customer, command.cart)
    # The rate is the tier's in force at the call (docs/rules.md §5).
    tier = uow.accounts.pricing_tier(program, customer_id=customer, now=now)
    plan = plan_accrual(
        program,
        cart=command.cart,
        spent_by_line=order.spent_on_delivery(command.cart) if order else {},
        tier=tier,
        delivered_at=command.delivered_at,
    )
    if order is None:
        _add_order(uow, command, now=now)
    bucket_id = _credit(uow, program, command, plan, state) if plan.points else None
    try:
        uow.orders.add_accrual(_accrual(program, command, plan, tier, bucket_id, now))
    except DuplicateAccrual as exc:
        raise OrderAlreadyAccrued(command.order_id) from exc
    entry = LedgerEntry(
        "ACCRUAL", plan.points, plan.source, plan.available_at, bucket_id, command.order_id
    )
    uow.ledger.append(
        [entry], program_id=program.id, customer_id=customer,
        request_id=command.key.request_id, now=now,
    )  # fmt: skip
    return AccrueResult(plan.points, plan.available_at, plan.expires_at)


def _add_order(uow: UnitOfWork, command: commands.AccrueOrder, *, now: datetime) -> None:
    """An order first named by its accrual: its lines are the accrual's cart."""
    order = Order.new(
        program_id=command.program_id,
        order_id=command.order_id,
        customer_id=command.customer_id,
        cart=command.cart,
    )
    try:
        uow.orders.add(order, now=now)
    except DuplicateOrder as exc:
        # Recorded meanwhile: under another customer (this one's calls wait for its lock).
        raise OrderCustomerMismatch(
            order_id=command.order_id, customer_id=command.customer_id
        ) from exc


def _credit(
    uow: UnitOfWork,
    program: Program,
    command: commands.AccrueOrder,
    plan: AccrualPlan,
    state: AccountState,
) -> int:
    """The accrual's bucket; already mature (no delay, or delivered long ago), it pays debt."""
    customer = command.customer_id
    bucket = NewBucket(
        program_id=program.id,
        customer_id=customer,
        source=plan.source,
        granted=plan.points,
        remaining=plan.points,
        available_at=plan.available_at,
        expires_at=plan.expires_at,
        origin="ACCRUAL",
        order_id=command.order_id,
        settled=False,
    )
    bucket_id = uow.accounts.add_bucket(bucket, now=state.now)
    new = uow.accounts.buckets_by_id([bucket_id])[bucket_id]
    settlement = settle_matured([new], debt=state.debt, now=state.now)
    if settlement.settled:
        uow.accounts.write_settlement(settlement)
        uow.accounts.set_debt(
            program_id=program.id, customer_id=customer, debt_points=settlement.debt
        )
    return bucket_id


def _accrual(
    program: Program,
    command: commands.AccrueOrder,
    plan: AccrualPlan,
    tier: Tier,
    bucket_id: int | None,
    now: datetime,
) -> Accrual:
    return Accrual(
        accrual_id=str(uuid.uuid4()),
        program_id=program.id,
        order_id=command.order_id,
        customer_id=command.customer_id,
        points=plan.points,
        base_minor=plan.base_minor,
        base_returned_minor=0,
        points_clawed_back=0,
        bucket_id=bucket_id,
        tier_id=tier.id,
        earn_rate_bp=tier.earn_rate_bp,
        program_version=program.version,
        delivered_at=command.delivered_at,
        available_at=plan.available_at,
        expires_at=plan.expires_at,
        created_at=now,
        lines=plan.lines,
    )
