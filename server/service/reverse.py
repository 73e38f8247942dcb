"""ReverseRedemption: give back the points spent on returned units (SPEC §6)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from pricing.buckets import plan_restore
from pricing.errors import OrderNotFound
from pricing.reversal import plan_line_returns, units_to_return
from server.service import commands
from server.service.deps import Deps
from server.service.idempotent import run_once
from server.store import buckets as bucket_store
from server.store.accounts import lock_account
from server.store.ledger import LedgerEntry, append
from server.store.redemptions import Redemption, find_redemption, record_return


@dataclass(frozen=True)
class ReverseResult:
    points_returned: int
    points_clawed_back: int
    debt_points: int
    redemption: Redemption | None
    balance_after: int


def reverse_redemption(
    deps: Deps,
    command: commands.ReverseRedemption,
    *,
    now: datetime,
    render: Callable[[ReverseResult], bytes],
) -> bytes:
    program = deps.program(command.program_id)

    def effect(connection: Connection) -> ReverseResult:
        found = find_redemption(connection, program_id=program.id, order_id=command.order_id)
        if found is None:
            raise OrderNotFound(command.order_id)
        lock_account(connection, program_id=program.id, customer_id=found.customer_id, now=now)
        # Re-read under the lock: a concurrent return may have committed meanwhile.
        redemption = find_redemption(connection, program_id=program.id, order_id=command.order_id)
        assert redemption is not None
        lines = [line.units() for line in redemption.lines]
        units = units_to_return(lines, command.lines)
        returned = sum(move.points for move in plan_line_returns(lines, units))
        restored = plan_restore(redemption.debits, points=returned)
        bucket_store.give_back(connection, restored)
        all_back = all(
            line.returned_units + units.get(line.line_id, 0) == line.quantity
            for line in redemption.lines
        )
        record_return(
            connection,
            redemption,
            units=units,
            restored=restored,
            points_returned=returned,
            state="REVERSED" if all_back else "PARTIALLY_REVERSED",
            now=now,
        )
        sources = bucket_store.buckets_by_id(connection, (r.bucket_id for r in restored))
        append(
            connection,
            [
                LedgerEntry(
                    kind="REVERSAL",
                    points=r.points,
                    source=sources[r.bucket_id].source,
                    effective_at=now,
                    bucket_id=r.bucket_id,
                    order_id=command.order_id,
                    reason=command.reason,
                )
                for r in restored
            ],
            program_id=program.id,
            customer_id=redemption.customer_id,
            request_id=command.key.request_id,
            now=now,
        )
        after = find_redemption(connection, program_id=program.id, order_id=command.order_id)
        balance = sum(
            b.remaining
            for b in bucket_store.spendable_buckets(
                connection, program_id=program.id, customer_id=redemption.customer_id, now=now
            )
        )
        return ReverseResult(returned, 0, 0, after, balance)

    return run_once(
        deps.db,
        program_id=program.id,
        request_id=command.key.request_id,
        method="ReverseRedemption",
        fingerprint=command.key.fingerprint,
        now=now,
        effect=effect,
        render=render,
    )
