"""ReverseRedemption: a return gives spent points back, takes earned points (docs/rules.md §6)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from pricing.buckets import pay_debt_from_restore, plan_clawback, plan_restore
from pricing.errors import InvalidArgument, OrderNotFound, Violation
from pricing.reversal import plan_line_returns, units_to_return
from server.service import commands
from server.service.account_state import AccountState, locked_state, read_state, write_release
from server.service.deps import Deps
from server.service.idempotent import run_once
from server.store import buckets as bucket_store
from server.store.accounts import set_debt
from server.store.accruals import Accrual, find_accrual, record_accrual_return
from server.store.ledger import LedgerEntry, append
from server.store.redemptions import Redemption, find_redemption, record_return

# Released and lapsed holds gave every point back already.
_NOTHING_TO_RETURN = {"RELEASED", "EXPIRED"}


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


def reverse_redemption(
    deps: Deps,
    command: commands.ReverseRedemption,
    *,
    now: datetime,
    render: Callable[[ReverseResult], bytes],
) -> bytes:
    program = deps.program(command.program_id)
    order_id = command.order_id

    def effect(connection: Connection) -> ReverseResult:
        found = find_redemption(connection, program_id=program.id, order_id=order_id) or (
            find_accrual(connection, program_id=program.id, order_id=order_id)
        )
        if found is None:
            raise OrderNotFound(order_id)
        state = locked_state(
            connection, program_id=program.id, customer_id=found.customer_id, now=now
        )
        # Re-read under the lock: a concurrent return may have committed meanwhile.
        redemption = find_redemption(connection, program_id=program.id, order_id=order_id)
        accrual = find_accrual(connection, program_id=program.id, order_id=order_id)
        returned = _Moved(0, [], state.debt)
        hold = next((h for h in state.holds if h.order_id == order_id), None)
        if hold is not None:
            if command.lines:
                raise InvalidArgument(
                    [Violation("lines", "a hold is released whole: send no lines")]
                )
            released = write_release(
                connection, hold, program_id=program.id, customer_id=found.customer_id,
                state="RELEASED", at=now, now=now, request_id=command.key.request_id,
                debt=state.debt, reason=command.reason,
            )  # fmt: skip
            returned = _Moved(released.points, [], state.debt - released.to_debt, released=True)
        elif redemption is not None and redemption.state not in _NOTHING_TO_RETURN:
            returned = _give_back(connection, redemption, command, state)
        clawed = _Moved(0, [], returned.debt)
        if accrual is not None:
            clawed = _take_back(connection, accrual, command, state, debt=returned.debt)
        if clawed.debt != state.debt:
            set_debt(
                connection,
                program_id=program.id,
                customer_id=found.customer_id,
                debt_points=clawed.debt,
            )
        append(
            connection,
            returned.entries + clawed.entries,
            program_id=program.id,
            customer_id=found.customer_id,
            request_id=command.key.request_id,
            now=now,
        )
        after = read_state(
            connection, program_id=program.id, customer_id=found.customer_id, now=now
        )
        return ReverseResult(
            points_returned=returned.points,
            points_clawed_back=clawed.points,
            debt_points=clawed.extra,
            redemption=find_redemption(connection, program_id=program.id, order_id=order_id),
            balance_after=after.spendable_points,
            released=returned.released,
        )

    outcome = run_once(
        deps,
        program_id=program.id,
        request_id=command.key.request_id,
        method="ReverseRedemption",
        fingerprint=command.key.fingerprint,
        now=now,
        effect=effect,
        render=render,
    )
    if outcome.result is not None:
        result = outcome.result
        back = deps.metrics.released if result.released else deps.metrics.reversed
        back.labels(program.id).inc(result.points_returned)
        taken = result.points_clawed_back + result.debt_points
        deps.metrics.clawed_back.labels(program.id).inc(taken)
    return outcome.answer


def _give_back(
    connection: Connection,
    redemption: Redemption,
    command: commands.ReverseRedemption,
    state: AccountState,
) -> _Moved:
    """Points spent on the returned units go back: debt first, then their own buckets."""
    lines = [line.units() for line in redemption.lines]
    units = units_to_return(lines, command.lines)
    points = sum(move.points for move in plan_line_returns(lines, units))
    restored = plan_restore(redemption.debits, points=points)
    expired_ids = {d.bucket_id for d in redemption.debits if _expired(d.expires_at, state.now)}
    # Points returned to a bucket that has already expired stay expired (docs/rules.md §6): worth
    # nothing, they pay no debt either. Only the live ones pay debt first.
    live = [d for d in restored if d.bucket_id not in expired_ids]
    to_buckets, to_debt = pay_debt_from_restore(live, debt=state.debt)
    bucket_store.give_back(connection, to_buckets)
    stay_expired = [d for d in restored if d.bucket_id in expired_ids]
    bucket_store.record_expired(connection, stay_expired)
    all_back = all(
        line.returned_units + units.get(line.line_id, 0) == line.quantity
        for line in redemption.lines
    )
    record_return(
        connection,
        redemption,
        units=units,
        restored=restored,
        points_returned=points,
        state="REVERSED" if all_back else "PARTIALLY_REVERSED",
        now=state.now,
    )
    sources = bucket_store.buckets_by_id(connection, (r.bucket_id for r in restored))
    entries = [
        LedgerEntry(
            kind=kind,
            points=sign * r.points,
            source=sources[r.bucket_id].source,
            effective_at=state.now,
            bucket_id=r.bucket_id,
            order_id=redemption.order_id,
            reason=command.reason,
        )
        for kind, sign, moves in (("REVERSAL", 1, restored), ("EXPIRY", -1, stay_expired))
        for r in moves
    ]
    return _Moved(points, entries, state.debt - to_debt)


def _take_back(
    connection: Connection,
    accrual: Accrual,
    command: commands.ReverseRedemption,
    state: AccountState,
    *,
    debt: int,
) -> _Moved:
    """Points the returned units earned come back: own bucket, other buckets, then debt."""
    units = units_to_return([line.points_units() for line in accrual.lines], command.lines)
    points = sum(
        m.points for m in plan_line_returns([x.points_units() for x in accrual.lines], units)
    )
    base = sum(m.points for m in plan_line_returns([x.base_units() for x in accrual.lines], units))
    # Buckets as they are now, after this call's own restores.
    current = bucket_store.account_buckets(
        connection, program_id=state.program_id, customer_id=state.customer_id, now=state.now
    )
    written_off = 0
    if accrual.bucket_id is not None:
        # The own bucket even if it expired (account_buckets leaves it out): points that
        # expired there were never spent, so they are not taken from other buckets.
        own = bucket_store.buckets_by_id(connection, [accrual.bucket_id])
        current = [b for b in current if b.bucket_id != accrual.bucket_id] + list(own.values())
        written_off = bucket_store.written_off(connection, accrual.bucket_id)
    plan = plan_clawback(
        current,
        points=points,
        own_bucket_id=accrual.bucket_id,
        now=state.now,
        own_written_off=written_off,
    )
    bucket_store.take(connection, plan.debits)
    if accrual.bucket_id is not None:
        bucket_store.take_written_off(connection, accrual.bucket_id, plan.written_off)
    record_accrual_return(
        connection, accrual, units=units, base_returned_minor=base, points_taken_back=points
    )
    by_id = {b.bucket_id: b for b in current}
    entries = [
        LedgerEntry(
            kind="CLAWBACK",
            points=-d.points,
            source=by_id[d.bucket_id].source,
            # Pending points leave at maturity, where their ACCRUAL entry counts them in.
            effective_at=max(by_id[d.bucket_id].available_at, state.now),
            bucket_id=d.bucket_id,
            order_id=accrual.order_id,
            reason=command.reason,
        )
        for d in plan.debits
    ]
    if plan.debt:
        entries.append(
            LedgerEntry(
                kind="DEBT",
                points=-plan.debt,
                source="",
                effective_at=state.now,
                order_id=accrual.order_id,
                reason=command.reason,
            )
        )
    return _Moved(plan.clawed_back, entries, debt + plan.debt, extra=plan.debt)


def _expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now
