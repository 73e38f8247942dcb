"""GetLiability and GetLiabilityRollForward, the finance reports (docs/rules.md §8, §11): reads.

Each report reads in one snapshot: the program summed set-wise from the rows as
stored, then the few accounts where time changed what no write has recorded yet
counted again one by one, as every read sees them at `now` (docs/rules.md §7).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from pricing.liability import (
    Key,
    Liability,
    Months,
    RollForward,
    Window,
    account_liability,
    as_read_at,
    combine,
    due_entries,
    months_between,
    naive_due_entries,
    roll_forward,
    tally,
)
from pricing.program import Program
from server.service.deps import Deps
from server.store import reporting as store
from server.store.db import Database


@dataclass(frozen=True)
class LiabilityReport:
    program: Program
    now: datetime
    figures: Liability


@dataclass(frozen=True)
class RollForwardReport:
    program: Program
    window: Window
    figures: RollForward


def get_liability(deps: Deps, *, program_id: str, now: datetime) -> LiabilityReport:
    program = deps.program(program_id)

    def read(connection: Connection) -> Liability:
        figures = store.liability_sums(connection, program_id=program.id, now=now)
        for customer in store.recounted_accounts(connection, program_id=program.id, now=now):
            rows = store.account_rows(connection, program_id=program.id, customer_id=customer)
            stored = account_liability(rows.buckets, rows.holds, debt=rows.debt, now=now)
            seen = as_read_at(rows.buckets, rows.holds, debt=rows.debt, now=now)
            figures = figures.minus(stored).plus(seen.liability())
        return figures

    return LiabilityReport(program, now, store.in_one_snapshot(_database(deps), read))


def get_roll_forward(
    deps: Deps,
    *,
    program_id: str,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> RollForwardReport:
    program = deps.program(program_id)
    window = Window.checked(start=start, end=end, now=now)

    def read(connection: Connection) -> RollForward:
        first = store.first_instant(connection, program_id=program.id) or window.end
        months = months_between(min(first, window.end), window.end, program.zone)
        sums = _stored_sums(connection, program.id, window, months)
        for customer in store.recounted_accounts(connection, program_id=program.id, now=now):
            rows = store.account_rows(connection, program_id=program.id, customer_id=customer)
            stored = naive_due_entries(rows.buckets, now=now)
            seen = due_entries(rows.buckets, rows.holds, debt=rows.debt, now=now)
            sums = combine(
                (1, sums),
                (-1, tally(stored, window=window, months=months)),
                (1, tally(seen, window=window, months=months)),
            )
        return roll_forward(sums, months)

    return RollForwardReport(program, window, store.in_one_snapshot(_database(deps), read))


def _database(deps: Deps) -> Database:
    """The reports sum whole programs set-wise: SQL on the database, not a unit of work."""
    assert deps.db is not None, "the finance reports need the database"
    return deps.db


def _stored_sums(
    connection: Connection, program_id: str, window: Window, months: Months
) -> dict[Key, int]:
    """The written ledger, and the expiries due by the window's end that are not written."""
    return combine(
        *(
            (1, sums(connection, program_id=program_id, start=window.start, end=window.end,
                     months=months))
            for sums in (store.ledger_sums, store.due_expiry_sums)
        )
    )  # fmt: skip
