"""AccrueOrder: what a delivered order earns, pending until it matures (docs/rules.md §5)."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from pricing.accrual import plan_accrual
from pricing.buckets import settle_matured
from pricing.errors import OrderAlreadyAccrued
from pricing.money import cumulative_share
from pricing.quote import check_currency
from server.service import commands
from server.service.account_state import locked_state
from server.service.deps import Deps
from server.service.idempotent import run_once
from server.service.tiers import pricing_tier
from server.store import buckets as bucket_store
from server.store.accounts import set_debt
from server.store.accruals import Accrual, AccrualLine, add_accrual, find_accrual
from server.store.ledger import LedgerEntry, append
from server.store.redemptions import find_redemption

# A redemption in these states spent points on the order's lines.
_SPENT_STATES = {"APPLIED", "PARTIALLY_REVERSED", "REVERSED"}


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

    def effect(connection: Connection) -> AccrueResult:
        check_currency(program, command.cart)  # after the request id's claim (docs/rules.md §7)
        customer = command.customer_id
        state = locked_state(connection, program_id=program.id, customer_id=customer, now=now)
        if find_accrual(connection, program_id=program.id, order_id=command.order_id):
            raise OrderAlreadyAccrued(command.order_id)
        redemption = find_redemption(connection, program_id=program.id, order_id=command.order_id)
        spent = {}
        if redemption is not None and redemption.state in _SPENT_STATES:
            # Points still spent on each line: what returns before delivery gave back is not.
            spent = {
                line.line_id: line.points
                - cumulative_share(line.points, done=line.returned_units, of=line.quantity)
                for line in redemption.lines
            }
        # The rate is the tier's in force at the call (docs/rules.md §5).
        tier = pricing_tier(connection, program, customer_id=customer, now=now)
        plan = plan_accrual(
            program,
            cart=command.cart,
            spent_by_line=spent,
            tier=tier,
            delivered_at=command.delivered_at,
        )
        bucket_id = None
        if plan.points:
            bucket_id = bucket_store.add_bucket(
                connection,
                program_id=program.id,
                customer_id=customer,
                source=plan.source,
                granted=plan.points,
                remaining=plan.points,
                available_at=plan.available_at,
                expires_at=plan.expires_at,
                origin="ACCRUAL",
                order_id=command.order_id,
                now=now,
                settled=False,
            )
            # Already mature (no delay, or delivered long ago): it pays debt right now.
            new = bucket_store.buckets_by_id(connection, [bucket_id])[bucket_id]
            settlement = settle_matured([new], debt=state.debt, now=now)
            if settlement.settled:
                bucket_store.write_settlement(connection, settlement)
                set_debt(
                    connection,
                    program_id=program.id,
                    customer_id=customer,
                    debt_points=settlement.debt,
                )
        accrual = Accrual(
            accrual_id=str(uuid.uuid4()),
            program_id=program.id,
            order_id=command.order_id,
            customer_id=customer,
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
            lines=tuple(
                AccrualLine(line.line_id, line.quantity, line.base_minor, line.points)
                for line in plan.lines
            ),
        )
        try:
            add_accrual(connection, accrual)
        except IntegrityError as exc:
            if "accruals" not in str(exc.orig):
                raise
            raise OrderAlreadyAccrued(command.order_id) from exc
        append(
            connection,
            [
                LedgerEntry(
                    kind="ACCRUAL",
                    points=plan.points,
                    source=plan.source,
                    effective_at=plan.available_at,
                    bucket_id=bucket_id,
                    order_id=command.order_id,
                )
            ],
            program_id=program.id,
            customer_id=customer,
            request_id=command.key.request_id,
            now=now,
        )
        return AccrueResult(plan.points, plan.available_at, plan.expires_at)

    outcome = run_once(
        deps,
        program_id=program.id,
        request_id=command.key.request_id,
        method="AccrueOrder",
        fingerprint=command.key.fingerprint,
        now=now,
        effect=effect,
        render=render,
    )
    if outcome.result is not None:
        deps.metrics.accrued.labels(program.id).inc(outcome.result.points)
    return outcome.answer
