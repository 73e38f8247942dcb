"""The ledger's invariants, checked directly on the database with SQLAlchemy (docs/rules.md §7).

* every bucket: 0 ≤ remaining ≤ granted;
* every account, at instant `t`: the ledger entries effective at or before
  `t` sum to the points spendable at `t` (remaining of the buckets with
  `available_at ≤ t < expires_at`) minus the account's debt;
* every redemption: its points are the sum of its line allocations and of
  the points taken from buckets; what was reversed is the sum of what went
  back to those buckets; a released or lapsed hold gave back all its points
  (and reversed none), a live hold none.

There is no expiry job yet, so the ledger equation is only meaningful at an
instant no earlier than the account's last change: tests check it at the
`as_of` they used.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from server.store.db import create_database_engine
from server.store.schema import (
    accounts,
    buckets,
    ledger_entries,
    redemption_debits,
    redemption_lines,
    redemptions,
)

Account = tuple[str, str]


@dataclass(frozen=True)
class Checked:
    accounts: int
    buckets: int
    entries: int
    redemptions: int


def check_invariants(url: str, at: datetime) -> Checked:
    """Assert the invariants for every account of the database at `url`, at instant `at`."""
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            bucket_rows = connection.execute(select(buckets)).all()
            entry_rows = connection.execute(
                select(
                    ledger_entries.c.program_id,
                    ledger_entries.c.customer_id,
                    ledger_entries.c.points,
                    ledger_entries.c.effective_at,
                )
            ).all()
            account_rows = connection.execute(select(accounts)).all()
            redemption_rows = connection.execute(select(redemptions)).all()
            line_rows = connection.execute(select(redemption_lines)).all()
            debit_rows = connection.execute(select(redemption_debits)).all()
    finally:
        engine.dispose()

    bad = [
        (b.bucket_id, b.granted, b.remaining)
        for b in bucket_rows
        if not 0 <= b.remaining <= b.granted
    ]
    assert not bad, f"buckets outside 0 ≤ remaining ≤ granted (id, granted, remaining): {bad}"

    ledger: dict[Account, int] = defaultdict(int)
    for e in entry_rows:
        if e.effective_at <= at:
            ledger[(e.program_id, e.customer_id)] += e.points
    spendable: dict[Account, int] = defaultdict(int)
    for b in bucket_rows:
        if b.available_at <= at and (b.expires_at is None or at < b.expires_at):
            spendable[(b.program_id, b.customer_id)] += b.remaining
    debt = {(a.program_id, a.customer_id): a.debt_points for a in account_rows}
    everyone = set(debt) | set(ledger) | set(spendable)
    wrong = {
        account: {
            "ledger": ledger[account],
            "spendable": spendable[account],
            "debt": debt.get(account, 0),
        }
        for account in sorted(everyone)
        if ledger[account] != spendable[account] - debt.get(account, 0)
    }
    assert not wrong, f"ledger ≠ spendable − debt at {at.isoformat()}: {wrong}"

    line_points: dict[str, int] = defaultdict(int)
    for line in line_rows:
        line_points[line.redemption_id] += line.points
    taken: dict[str, int] = defaultdict(int)
    returned: dict[str, int] = defaultdict(int)
    for d in debit_rows:
        taken[d.redemption_id] += d.points_taken
        returned[d.redemption_id] += d.points_returned
    for r in redemption_rows:
        rid = r.redemption_id
        assert r.points == line_points[rid] == taken[rid], (rid, r.points, line_points, taken)
        if r.state in ("RELEASED", "EXPIRED"):
            # A released or lapsed hold gave every point back; none was spent, so none
            # was reversed.
            assert returned[rid] == r.points and r.points_reversed == 0, (rid, r.state)
        else:
            assert r.points_reversed == returned[rid], (rid, r.points_reversed, returned[rid])
        if r.state == "HELD":
            assert returned[rid] == 0, (rid, r.state, returned[rid])
        all_back = all(
            line.returned_units == line.quantity for line in line_rows if line.redemption_id == rid
        )
        if r.state == "REVERSED":
            assert all_back and r.points_reversed == r.points, (rid, r.state)

    return Checked(len(everyone), len(bucket_rows), len(entry_rows), len(redemption_rows))
