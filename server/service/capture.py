"""CaptureRedemption: a held redemption becomes spent (docs/rules.md §8)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pricing.errors import HoldExpired, HoldReleased, OrderNotFound
from pricing.order import Order, Redemption, RedemptionState
from server.service import commands
from server.service.deps import Deps
from server.service.ports import UnitOfWork


@dataclass(frozen=True)
class Captured:
    redemption: Redemption
    captured: int  # points this call turned from held into spent
    balance_after: int  # spendable points: held points were not spendable before either


def capture_redemption(
    deps: Deps,
    command: commands.CaptureRedemption,
    *,
    now: datetime,
    render: Callable[[Captured], bytes],
) -> bytes:
    program = deps.program(command.program_id)

    def effect(uow: UnitOfWork) -> Captured:
        order = _order(uow, program.id, command.order_id)
        # Under the lock a lapse due by `now` is written first: capture and lapse are
        # decided in one order, so exactly one of them happens.
        state = uow.accounts.lock(program_id=program.id, customer_id=order.customer_id, now=now)
        redemption = _order(uow, program.id, command.order_id).latest
        assert redemption is not None  # an order's attempts are never deleted
        if redemption.state is RedemptionState.EXPIRED:
            raise HoldExpired(command.order_id)
        if redemption.state is RedemptionState.RELEASED:
            raise HoldReleased(command.order_id)
        if redemption.state is not RedemptionState.HELD:
            return Captured(redemption, 0, state.spendable_points)  # already spent: as it is
        captured = redemption.moved_to(RedemptionState.APPLIED)
        uow.orders.set_state(redemption_id=redemption.redemption_id, state=captured.state, now=now)
        return Captured(captured, captured.points, state.spendable_points)

    outcome = deps.once(
        "CaptureRedemption",
        program.id,
        command.key,
        now=now,
        effect=effect,
        render=render,
    )
    if outcome.result is not None:
        deps.metrics.captured.labels(program.id).inc(outcome.result.captured)
    return outcome.answer


def _order(uow: UnitOfWork, program_id: str, order_id: str) -> Order:
    """The order with a redemption attempt (else ORDER_NOT_FOUND)."""
    order = uow.orders.get(program_id=program_id, order_id=order_id)
    if order is None or order.latest is None:
        raise OrderNotFound(order_id)
    return order
