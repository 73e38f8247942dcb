"""ApplyRedemption: spend points on an order, in one transaction on the locked account."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from pricing.buckets import DebitRecord
from pricing.errors import OrderAlreadyRedeemed
from pricing.quote import check_currency
from pricing.redemption import plan_redemption
from server.service import commands
from server.service.account_state import locked_state
from server.service.deps import Deps
from server.service.idempotent import run_once
from server.service.tiers import pricing_tier
from server.store import buckets as bucket_store
from server.store.ledger import LedgerEntry, append
from server.store.redemptions import (
    Redemption,
    RedemptionLine,
    add_redemption,
)

APPLIED = "APPLIED"
HELD = "HELD"


@dataclass(frozen=True)
class ApplyResult:
    redemption: Redemption
    balance_after: int


def apply_redemption(
    deps: Deps,
    command: commands.ApplyRedemption,
    *,
    now: datetime,
    render: Callable[[ApplyResult], bytes],
) -> bytes:
    program = deps.program(command.program_id)
    hold_deadline = None
    if command.hold_seconds > 0:
        hold_deadline = now + timedelta(seconds=command.hold_seconds)

    def effect(connection: Connection) -> ApplyResult:
        # The order of checks is docs/rules.md §7's: currency, then the order, then the amounts.
        check_currency(program, command.cart)
        # The order is looked up under the lock: a concurrent apply for it may just have committed.
        state = locked_state(
            connection,
            program_id=program.id,
            customer_id=command.customer_id,
            now=now,
            order_id=command.order_id,
        )
        if state.order_taken:
            raise OrderAlreadyRedeemed(command.order_id)
        buckets = state.spendable()
        tier = pricing_tier(connection, program, customer_id=command.customer_id, now=now)
        plan = plan_redemption(
            program,
            cart=command.cart,
            tier=tier,
            payment_method=command.payment_method,
            points=command.points,
            buckets=buckets,
            now=now,
        )
        by_id = {b.bucket_id: b for b in buckets}
        redemption = Redemption(
            redemption_id=str(uuid.uuid4()),
            program_id=program.id,
            order_id=command.order_id,
            customer_id=command.customer_id,
            state=HELD if hold_deadline else APPLIED,
            points=plan.points,
            discount_minor=plan.discount_minor,
            points_reversed=0,
            payment_method=command.payment_method,
            program_version=program.version,
            hold_expires_at=hold_deadline,
            created_at=now,
            lines=tuple(
                RedemptionLine(a.line_id, a.quantity, a.points, a.discount_minor)
                for a in plan.lines
            ),
            debits=tuple(
                DebitRecord(d.bucket_id, d.points, 0, by_id[d.bucket_id].expires_at, d.bucket_id)
                for d in plan.debits
            ),
        )
        try:
            add_redemption(connection, redemption)
        except IntegrityError as exc:
            if "redemptions" not in str(exc.orig):
                raise
            # A concurrent apply for the same order committed first (UNIQUE program, order).
            raise OrderAlreadyRedeemed(command.order_id) from exc
        bucket_store.take(connection, plan.debits)
        append(
            connection,
            [
                LedgerEntry(
                    # A hold takes the points out of the balance now; capture writes nothing.
                    kind="HOLD" if hold_deadline else "REDEMPTION",
                    points=-d.points,
                    source=by_id[d.bucket_id].source,
                    effective_at=now,
                    bucket_id=d.bucket_id,
                    order_id=command.order_id,
                )
                for d in plan.debits
            ],
            program_id=program.id,
            customer_id=command.customer_id,
            request_id=command.key.request_id,
            now=now,
        )
        balance = sum(b.remaining for b in buckets) - plan.points
        return ApplyResult(redemption, balance)

    outcome = run_once(
        deps,
        program_id=program.id,
        request_id=command.key.request_id,
        method="ApplyRedemption",
        fingerprint=command.key.fingerprint,
        now=now,
        effect=effect,
        render=render,
    )
    if outcome.result is not None:
        spent = deps.metrics.held if hold_deadline else deps.metrics.redeemed
        spent.labels(program.id).inc(outcome.result.redemption.points)
    return outcome.answer
