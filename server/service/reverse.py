"""ReverseRedemption: a return gives spent points back, takes earned points (docs/rules.md §6).

The order decides what a return moves (pricing/order.py); this writes it down on the
order's customer's account, the only account a return ever touches.
"""

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pricing.buckets import Debit
from pricing.errors import OrderNotFound
from pricing.ledger import LedgerEntry
from pricing.order import (
    AccrualReturn,
    Order,
    Redemption,
    RedemptionReturn,
    answered_attempt,
    give_back_entries,
    plan_give_back,
    plan_take_back,
    take_back_entries,
)
from server.service import commands
from server.service.account_state import AccountState
from server.service.deps import Deps
from server.service.ports import UnitOfWork


@dataclass(frozen=True)
class ReverseResult:
    points_returned: int
    points_clawed_back: int
    debt_points: int
    redemption: Redemption | None
    balance_after: int
    released: bool = False  # the points came back from an uncaptured hold


@dataclass(frozen=True)
class _Moved:
    """What one side of a return did: ledger entries to write and the account's new debt."""

    points: int
    entries: list[LedgerEntry]
    debt: int
    extra: int = 0  # for a clawback: what became debt
    released: bool = False
    restored: tuple[Debit, ...] = field(default=())  # points given back, per debit


def reverse_redemption(
    deps: Deps,
    command: commands.ReverseRedemption,
    *,
    now: datetime,
    render: Callable[[ReverseResult], bytes],
) -> bytes:
    program = deps.program(command.program_id)
    effect = functools.partial(_reverse, program_id=program.id, command=command, now=now)
    outcome = deps.once(
        "ReverseRedemption", program.id, command.key, now=now, effect=effect, render=render
    )
    if outcome.result is not None:
        result = outcome.result
        back = deps.metrics.released if result.released else deps.metrics.reversed
        back.labels(program.id).inc(result.points_returned)
        taken = result.points_clawed_back + result.debt_points
        deps.metrics.clawed_back.labels(program.id).inc(taken)
    return outcome.answer


def _reverse(
    uow: UnitOfWork, *, program_id: str, command: commands.ReverseRedemption, now: datetime
) -> ReverseResult:
    customer = uow.orders.customer(program_id=program_id, order_id=command.order_id)
    if customer is None:
        raise OrderNotFound(command.order_id)
    state = uow.accounts.lock(program_id=program_id, customer_id=customer, now=now)
    # The order read once, under the lock: a concurrent return may have committed meanwhile.
    order = _order(uow, program_id, command.order_id)
    plan = order.plan_return(command.lines)
    returned = _Moved(0, [], state.debt)
    if plan.release is not None:
        returned = _release(uow, plan.release, command, state)
    elif plan.redemption is not None:
        returned = _give_back(uow, plan.redemption, command, state)
    clawed = _take_back(uow, plan.accrual, command, state, debt=returned.debt)
    uow.orders.record_return(order, plan, restored=returned.restored, now=now)
    if clawed.debt != state.debt:
        uow.accounts.set_debt(program_id=program_id, customer_id=customer, debt_points=clawed.debt)
    uow.ledger.append(
        returned.entries + clawed.entries, program_id=program_id, customer_id=customer,
        request_id=command.key.request_id, now=now,
    )  # fmt: skip
    after = uow.accounts.read(program_id=program_id, customer_id=customer, now=now)
    return ReverseResult(
        points_returned=returned.points,
        points_clawed_back=clawed.points,
        debt_points=clawed.extra,
        redemption=answered_attempt(order, plan),  # as written above, not read back
        balance_after=after.spendable_points,
        released=returned.released,
    )


def _order(uow: UnitOfWork, program_id: str, order_id: str) -> Order:
    order = uow.orders.get(program_id=program_id, order_id=order_id)
    if order is None:
        raise OrderNotFound(order_id)
    return order


def _release(
    uow: UnitOfWork, hold: Redemption, command: commands.ReverseRedemption, state: AccountState
) -> _Moved:
    """An uncaptured hold comes back whole (its RELEASE entries are written with it)."""
    live = next(h for h in state.holds if h.redemption_id == hold.redemption_id)
    released = uow.accounts.release(
        live, program_id=state.program_id, customer_id=state.customer_id, at=state.now,
        now=state.now, request_id=command.key.request_id, debt=state.debt, reason=command.reason,
    )  # fmt: skip
    return _Moved(released.points, [], state.debt - released.to_debt, released=True)


def _give_back(
    uow: UnitOfWork,
    back: RedemptionReturn,
    command: commands.ReverseRedemption,
    state: AccountState,
) -> _Moved:
    """Points spent on the returned units go back: debt first, then their own buckets."""
    plan = plan_give_back(back.redemption, points=back.points, debt=state.debt, now=state.now)
    uow.accounts.give_back(plan.to_buckets)
    uow.accounts.record_expired(plan.stay_expired)
    entries = give_back_entries(
        plan,
        sources=_sources(uow, state, (d.bucket_id for d in plan.restored)),
        order_id=back.redemption.order_id,
        reason=command.reason,
        now=state.now,
    )
    return _Moved(plan.points, entries, state.debt - plan.to_debt, restored=plan.restored)


def _sources(uow: UnitOfWork, state: AccountState, bucket_ids: Iterable[int]) -> dict[int, str]:
    """Each bucket's source: from the account as locked, else (drained or expired) read."""
    known = {b.bucket_id: b.source for b in state.buckets}
    missing = [bucket_id for bucket_id in bucket_ids if bucket_id not in known]
    if missing:
        known.update((i, b.source) for i, b in uow.accounts.buckets_by_id(missing).items())
    return known


def _take_back(
    uow: UnitOfWork,
    back: AccrualReturn | None,
    command: commands.ReverseRedemption,
    state: AccountState,
    *,
    debt: int,
) -> _Moved:
    """Points the returned units earned come back: own bucket, other buckets, then debt."""
    if back is None:
        return _Moved(0, [], debt)
    own_id = back.accrual.bucket_id
    # Buckets as they are now, after this call's own restores.
    current = uow.accounts.buckets(
        program_id=state.program_id, customer_id=state.customer_id, now=state.now
    )
    written_off = 0
    if own_id is not None:
        # The own bucket even if it expired (`buckets` leaves it out): points that expired
        # there were never spent, so they are not taken from other buckets.
        own = uow.accounts.buckets_by_id([own_id])
        current = [b for b in current if b.bucket_id != own_id] + list(own.values())
        written_off = uow.accounts.written_off(own_id)
    plan = plan_take_back(
        back.accrual, points=back.points, buckets=current, written_off=written_off, now=state.now
    )
    uow.accounts.take(plan.debits)
    if own_id is not None:
        uow.accounts.take_written_off(own_id, plan.written_off)
    entries = take_back_entries(
        plan,
        buckets={b.bucket_id: b for b in current},
        order_id=back.accrual.order_id,
        reason=command.reason,
        now=state.now,
    )
    return _Moved(plan.clawed_back, entries, debt + plan.debt, extra=plan.debt)
