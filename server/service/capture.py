"""CaptureRedemption: a held redemption becomes spent (docs/rules.md §8)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from pricing.errors import HoldExpired, HoldReleased, OrderNotFound
from server.service import commands
from server.service.account_state import locked_state
from server.service.deps import Deps
from server.service.idempotent import run_once
from server.store.redemptions import Redemption, find_redemption, set_state


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

    def effect(connection: Connection) -> Captured:
        found = find_redemption(connection, program_id=program.id, order_id=command.order_id)
        if found is None:
            raise OrderNotFound(command.order_id)
        # Under the lock a lapse due by `now` is written first: capture and lapse are
        # decided in one order, so exactly one of them happens.
        state = locked_state(
            connection, program_id=program.id, customer_id=found.customer_id, now=now
        )
        redemption = find_redemption(connection, program_id=program.id, order_id=command.order_id)
        assert redemption is not None
        if redemption.state == "EXPIRED":
            raise HoldExpired(command.order_id)
        if redemption.state == "RELEASED":
            raise HoldReleased(command.order_id)
        if redemption.state != "HELD":
            return Captured(redemption, 0, state.spendable_points)  # already spent: as it is
        set_state(connection, redemption_id=redemption.redemption_id, state="APPLIED", now=now)
        captured = find_redemption(connection, program_id=program.id, order_id=command.order_id)
        assert captured is not None
        return Captured(captured, captured.points, state.spendable_points)

    outcome = run_once(
        deps,
        program_id=program.id,
        request_id=command.key.request_id,
        method="CaptureRedemption",
        fingerprint=command.key.fingerprint,
        now=now,
        effect=effect,
        render=render,
    )
    if outcome.result is not None:
        deps.metrics.captured.labels(program.id).inc(outcome.result.captured)
    return outcome.answer
