"""The ledger's invariants, checked after a test by the project's `reconcile` (docs/rules.md §7).

`server/reconcile.py` is what operators run (`loyalty-server reconcile`): buckets, holds,
redemptions, accruals, debt and the ledger agree, account by account. The tests assert
that its report is clean rather than keeping a second implementation of the same rules
here, so a rule checked once is checked the same way in production and in the tests.
"""

from datetime import datetime

from server.reconcile import Report, reconcile
from server.store.db import create_database_engine


def check_invariants(url: str, at: datetime) -> Report:
    """Reconcile the database at `url` as of `at`; assert it found no mismatch."""
    engine = create_database_engine(url, pool_size=1)
    try:
        report = reconcile(engine, as_of=at)
    finally:
        engine.dispose()
    mismatches = "\n".join(f"  {m}" for m in report.mismatches)
    assert report.ok, f"reconcile: {report.summary()}\n{mismatches}"
    return report
