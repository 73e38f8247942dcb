"""GrantPoints: credit points of a source; the credit pays debt first (SPEC §5)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from pricing.errors import UnknownSource
from pricing.grants import check_window, grant_credit, grant_window
from pricing.program import Source
from server.service import commands
from server.service.account_state import locked_state
from server.service.deps import Deps
from server.service.idempotent import run_once
from server.store import buckets as bucket_store
from server.store.accounts import set_debt
from server.store.ledger import LedgerEntry, append


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
    # replay at a later `as_of` returns the first answer (SPEC §7).
    check_window(available_at=command.available_at, expires_at=command.expires_at)
    outcome = run_once(
        deps,
        program_id=program.id,
        request_id=command.key.request_id,
        method="GrantPoints",
        fingerprint=command.key.fingerprint,
        now=now,
        effect=lambda connection: _grant(
            connection, command, source, program_id=program.id, now=now
        ),
        render=render,
    )
    if outcome.result is not None:
        deps.metrics.granted.labels(program.id).inc(outcome.result.points)
    return outcome.answer


def _grant(
    connection: Connection,
    command: commands.GrantPoints,
    source: Source,
    *,
    program_id: str,
    now: datetime,
) -> GrantResult:
    window = grant_window(
        available_at=command.available_at,
        expires_at=command.expires_at,
        expiry_days=source.expiry_days,
        now=now,
    )
    customer = command.customer_id
    state = locked_state(connection, program_id=program_id, customer_id=customer, now=now)
    credit = grant_credit(points=command.points, debt=state.debt, window=window, now=now)
    bucket_id = bucket_store.add_bucket(
        connection, program_id=program_id, customer_id=customer, source=source.id,
        granted=command.points, remaining=credit.remaining, available_at=window.available_at,
        expires_at=window.expires_at, origin="GRANT", order_id=None, now=now,
        settled=credit.settled,
    )  # fmt: skip
    if credit.to_debt:
        set_debt(
            connection,
            program_id=program_id,
            customer_id=customer,
            debt_points=state.debt - credit.to_debt,
        )
    # One entry, effective when the points become spendable: what pays debt and what
    # stays both count then, so the ledger sums to spendable − debt (SPEC §7).
    entry = LedgerEntry(
        kind="GRANT", points=command.points, source=source.id,
        effective_at=window.available_at, bucket_id=bucket_id, reason=command.reason,
    )  # fmt: skip
    append(
        connection, [entry], program_id=program_id, customer_id=customer,
        request_id=command.key.request_id, now=now,
    )  # fmt: skip
    balance_after = state.spendable_points + credit.spendable_now
    return GrantResult(command.points, balance_after, state.debt - credit.to_debt)
