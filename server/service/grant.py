"""GrantPoints: credit points of a source; the credit pays debt first (docs/rules.md §5)."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pricing.buckets import pay_debt_first
from pricing.errors import InvalidArgument, UnknownSource, Violation
from pricing.ledger import LedgerEntry
from pricing.money import INT64_MAX
from pricing.program import Program, Source
from server.service import commands
from server.service.deps import Deps
from server.service.ports import NewBucket, UnitOfWork


@dataclass(frozen=True)
class GrantResult:
    points: int
    balance_after: int
    debt_points: int


def grant_points(
    deps: Deps,
    command: commands.GrantPoints,
    *,
    now: datetime,
    render: Callable[[GrantResult], bytes],
) -> bytes:
    program = deps.program(command.program_id)
    source = program.sources.get(command.source)
    if source is None:
        raise UnknownSource(field="source", source=command.source, known=sorted(program.sources))
    # A window the request fixes itself is bad input, refused before its request id is
    # looked at. One that starts at `now` is judged after: a replay at a later `as_of`
    # returns the first answer (docs/rules.md §7), even once its `expires_at` has passed.
    if command.available_at is not None:
        _window(command, source, now=now)
    effect = functools.partial(_grant, program=program, source=source, command=command, now=now)
    outcome = deps.once(
        "GrantPoints", program.id, command.key, now=now, effect=effect, render=render
    )
    if outcome.result is not None:
        deps.metrics.granted.labels(program.id).inc(outcome.result.points)
    return outcome.answer


def _window(
    command: commands.GrantPoints, source: Source, *, now: datetime
) -> tuple[datetime, datetime | None]:
    """When the granted points are spendable: from `available_at` (now) to their expiry."""
    available_at = command.available_at or now
    expires_at = command.expires_at
    if expires_at is None and source.expiry_days is not None:
        try:
            expires_at = available_at + timedelta(days=source.expiry_days)
        except OverflowError:
            field = "available_at" if command.available_at else "as_of"
            late = Violation(field, "the default expiry is after 9999")
            raise InvalidArgument([late]) from None
    if expires_at is not None and expires_at <= available_at:
        raise InvalidArgument([Violation("expires_at", "must be after available_at")])
    return available_at, expires_at


def _grant(
    uow: UnitOfWork,
    *,
    program: Program,
    source: Source,
    command: commands.GrantPoints,
    now: datetime,
) -> GrantResult:
    available_at, expires_at = _window(command, source, now=now)
    customer = command.customer_id
    state = uow.accounts.lock(program_id=program.id, customer_id=customer, now=now)
    payment = pay_debt_first(credit=command.points, debt=state.debt)
    if sum(b.remaining for b in state.buckets) + payment.to_bucket > INT64_MAX:
        # Balances are int64 on the wire: a sum that overflows is bad input (docs/rules.md §3).
        raise InvalidArgument([Violation("points", "the customer's points would overflow int64")])
    bucket = NewBucket(
        program.id, customer, source.id, command.points, payment.to_bucket,
        available_at, expires_at, origin="GRANT", order_id=None,
    )  # fmt: skip
    bucket_id = uow.accounts.add_bucket(bucket, now=now)
    if payment.to_debt:
        debt = state.debt - payment.to_debt
        uow.accounts.set_debt(program_id=program.id, customer_id=customer, debt_points=debt)
    # What pays debt counts now; the rest when it becomes spendable. So the ledger
    # always sums to spendable − debt, even for a grant that matures later.
    parts = [(payment.to_debt, now), (payment.to_bucket, available_at)]
    if available_at <= now:
        parts = [(command.points, available_at)]
    entries = [
        LedgerEntry("GRANT", points, source.id, effective_at, bucket_id, reason=command.reason)
        for points, effective_at in parts
    ]
    uow.ledger.append(
        entries, program_id=program.id, customer_id=customer,
        request_id=command.key.request_id, now=now,
    )  # fmt: skip
    spendable_now = state.spendable_points + (payment.to_bucket if available_at <= now else 0)
    return GrantResult(command.points, spendable_now, state.debt - payment.to_debt)
