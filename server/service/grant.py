"""GrantPoints: credit points of a source; the credit pays debt first (docs/rules.md §5)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from pricing.buckets import pay_debt_first
from pricing.errors import InvalidArgument, UnknownSource, Violation
from pricing.money import INT64_MAX
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

    def window() -> tuple[datetime, datetime | None]:
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

    # A window the request fixes itself is bad input, refused before its request id is
    # looked at. One that starts at `now` is judged after: a replay at a later `as_of`
    # returns the first answer (docs/rules.md §7), even once its `expires_at` has passed.
    if command.available_at is not None:
        window()

    def effect(connection: Connection) -> GrantResult:
        available_at, expires_at = window()
        customer = command.customer_id
        state = locked_state(connection, program_id=program.id, customer_id=customer, now=now)
        payment = pay_debt_first(credit=command.points, debt=state.debt)
        if sum(b.remaining for b in state.buckets) + payment.to_bucket > INT64_MAX:
            # Balances are int64 on the wire: a sum that overflows is bad input (docs/rules.md §3).
            raise InvalidArgument(
                [Violation("points", "the customer's points would overflow int64")]
            )
        bucket_id = bucket_store.add_bucket(
            connection,
            program_id=program.id,
            customer_id=customer,
            source=source.id,
            granted=command.points,
            remaining=payment.to_bucket,
            available_at=available_at,
            expires_at=expires_at,
            origin="GRANT",
            order_id=None,
            now=now,
        )
        if payment.to_debt:
            set_debt(
                connection,
                program_id=program.id,
                customer_id=customer,
                debt_points=state.debt - payment.to_debt,
            )
        # What pays debt counts now; the rest when it becomes spendable. So the ledger
        # always sums to spendable − debt, even for a grant that matures later.
        parts = [(payment.to_debt, now), (payment.to_bucket, available_at)]
        if available_at <= now:
            parts = [(command.points, available_at)]
        append(
            connection,
            [
                LedgerEntry(
                    kind="GRANT",
                    points=points,
                    source=source.id,
                    effective_at=effective_at,
                    bucket_id=bucket_id,
                    reason=command.reason,
                )
                for points, effective_at in parts
            ],
            program_id=program.id,
            customer_id=customer,
            request_id=command.key.request_id,
            now=now,
        )
        spendable_now = state.spendable_points + (payment.to_bucket if available_at <= now else 0)
        return GrantResult(command.points, spendable_now, state.debt - payment.to_debt)

    outcome = run_once(
        deps,
        program_id=program.id,
        request_id=command.key.request_id,
        method="GrantPoints",
        fingerprint=command.key.fingerprint,
        now=now,
        effect=effect,
        render=render,
    )
    if outcome.result is not None:
        deps.metrics.granted.labels(program.id).inc(outcome.result.points)
    return outcome.answer
