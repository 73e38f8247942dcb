"""ApplyRedemption: spend points on an order, in one transaction on the locked account."""

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pricing.buckets import Bucket, Debit, DebitRecord
from pricing.errors import OrderAlreadyRedeemed, OrderCustomerMismatch
from pricing.ledger import LedgerEntry
from pricing.order import Order, OrderHead, Redemption, RedemptionLine, RedemptionState
from pricing.program import Program
from pricing.quote import check_currency
from pricing.redemption import RedemptionPlan, plan_redemption
from server.service import commands
from server.service.deps import Deps
from server.service.ports import Placement, UnitOfWork
from server.store.errors import DuplicateOrder, DuplicateRedemption


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
    held = command.hold_seconds > 0
    deadline = now + timedelta(seconds=command.hold_seconds) if held else None
    effect = functools.partial(_apply, program=program, command=command, deadline=deadline, now=now)
    outcome = deps.once(
        "ApplyRedemption", program.id, command.key, now=now, effect=effect, render=render,
        locks=(command.customer_id, command.order_id),
    )  # fmt: skip
    if outcome.result is not None:
        spent = deps.metrics.held if held else deps.metrics.redeemed
        spent.labels(program.id).inc(outcome.result.redemption.points)
    return outcome.answer


def _apply(
    uow: UnitOfWork,
    *,
    program: Program,
    command: commands.ApplyRedemption,
    deadline: datetime | None,
    now: datetime,
) -> ApplyResult:
    check_currency(program, command.cart)  # docs/rules.md §7's order: currency, order, amounts
    customer = command.customer_id
    # The order is looked up under the lock: a concurrent apply for it may just have committed.
    state = uow.accounts.lock(
        program_id=program.id, customer_id=customer, now=now, order_id=command.order_id
    )
    if state.order is not None:
        state.order.check_redeemable(customer)
    buckets = state.spendable()
    plan = plan_redemption(
        program,
        cart=command.cart,
        tier=uow.accounts.pricing_tier(program, customer_id=customer, now=now),
        payment_method=command.payment_method,
        points=command.points,
        buckets=buckets,
        now=now,
    )
    redemption = _redemption(program, command, plan, buckets, state.order, deadline, now)
    entries = _entries(redemption, buckets, now=now)
    _record(uow, command, state.order, redemption, plan.debits, entries, now=now)
    return ApplyResult(redemption, sum(b.remaining for b in buckets) - plan.points)


def _redemption(
    program: Program,
    command: commands.ApplyRedemption,
    plan: RedemptionPlan,
    buckets: Sequence[Bucket],
    order: OrderHead | None,
    deadline: datetime | None,
    now: datetime,
) -> Redemption:
    """The new attempt: a hold until `deadline`, or spent at once."""
    by_id = {b.bucket_id: b for b in buckets}
    return Redemption(
        redemption_id=str(uuid.uuid4()),
        program_id=program.id,
        order_id=command.order_id,
        customer_id=command.customer_id,
        state=RedemptionState.HELD if deadline else RedemptionState.APPLIED,
        points=plan.points,
        discount_minor=plan.discount_minor,
        points_reversed=0,
        payment_method=command.payment_method,
        program_version=program.version,
        hold_expires_at=deadline,
        created_at=now,
        lines=tuple(
            RedemptionLine(a.line_id, a.quantity, a.points, a.discount_minor) for a in plan.lines
        ),
        debits=tuple(
            DebitRecord(d.bucket_id, d.points, 0, by_id[d.bucket_id].expires_at, d.bucket_id)
            for d in plan.debits
        ),
        attempt=(order.attempts if order else 0) + 1,
    )


def _record(
    uow: UnitOfWork,
    command: commands.ApplyRedemption,
    order: OrderHead | None,
    redemption: Redemption,
    taken: Sequence[Debit],
    entries: Sequence[LedgerEntry],
    *,
    now: datetime,
) -> None:
    """The order (when new, with its lines whole), the attempt, the points taken and the
    ledger entries: written at once."""
    new = None
    if order is None:
        new = Order.new(
            program_id=redemption.program_id,
            order_id=command.order_id,
            customer_id=command.customer_id,
            cart=command.cart,
        )
    try:
        uow.place(Placement(redemption, new, taken, entries, command.key.request_id, now))
    except DuplicateOrder as exc:
        # Recorded meanwhile: under another customer (this one's calls wait for its lock).
        raise OrderCustomerMismatch(
            order_id=command.order_id, customer_id=command.customer_id
        ) from exc
    except DuplicateRedemption as exc:
        raise OrderAlreadyRedeemed(command.order_id) from exc


def _entries(
    redemption: Redemption, buckets: Sequence[Bucket], *, now: datetime
) -> list[LedgerEntry]:
    # A hold takes the points out of the balance now; capture writes nothing.
    kind = "HOLD" if redemption.state is RedemptionState.HELD else "REDEMPTION"
    sources = {b.bucket_id: b.source for b in buckets}
    return [
        LedgerEntry(
            kind=kind,
            points=-d.taken,
            source=sources[d.bucket_id],
            effective_at=now,
            bucket_id=d.bucket_id,
            order_id=redemption.order_id,
        )
        for d in redemption.debits
    ]
