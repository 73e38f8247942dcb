"""GrantPoints: credit points of a source; the credit pays debt first (docs/rules.md §5)."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pricing.errors import UnknownSource
from pricing.grants import check_window, grant_credit, grant_window
from pricing.ledger import LedgerEntry
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
    # What the request says of itself is bad input before its request id is looked at.
    # Whether the window is already over depends on `now`: judged in the effect, so that a
    # replay at a later `as_of` returns the first answer (docs/rules.md §7).
    check_window(available_at=command.available_at, expires_at=command.expires_at)
    effect = functools.partial(_grant, program=program, source=source, command=command, now=now)
    outcome = deps.once(
        "GrantPoints", program.id, command.key, now=now, effect=effect, render=render
    )
    if outcome.result is not None:
        deps.metrics.granted.labels(program.id).inc(outcome.result.points)
    return outcome.answer


def _grant(
    uow: UnitOfWork,
    *,
    program: Program,
    source: Source,
    command: commands.GrantPoints,
    now: datetime,
) -> GrantResult:
    window = grant_window(
        available_at=command.available_at,
        expires_at=command.expires_at,
        expiry_days=source.expiry_days,
        now=now,
    )
    customer = command.customer_id
    state = uow.accounts.lock(program_id=program.id, customer_id=customer, now=now)
    credit = grant_credit(points=command.points, debt=state.debt, window=window, now=now)
    bucket = NewBucket(
        program.id, customer, source.id, command.points, credit.remaining,
        window.available_at, window.expires_at, origin="GRANT", order_id=None,
        settled=credit.settled,
    )  # fmt: skip
    bucket_id = uow.accounts.add_bucket(bucket, now=now)
    if credit.to_debt:
        debt = state.debt - credit.to_debt
        uow.accounts.set_debt(program_id=program.id, customer_id=customer, debt_points=debt)
    # One entry, effective when the points become spendable: what pays debt and what
    # stays both count then, so the ledger sums to spendable − debt (docs/rules.md §7).
    entry = LedgerEntry(
        "GRANT", command.points, source.id, window.available_at, bucket_id, reason=command.reason
    )
    uow.ledger.append(
        [entry], program_id=program.id, customer_id=customer,
        request_id=command.key.request_id, now=now,
    )  # fmt: skip
    balance_after = state.spendable_points + credit.spendable_now
    return GrantResult(command.points, balance_after, state.debt - credit.to_debt)
