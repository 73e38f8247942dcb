"""indexes for the finance reports (ReportingService)

GetLiability sums a program's buckets with points left, GetLiabilityRollForward its
ledger up to an instant; without these both read every row of every program. On
PostgreSQL the indexes carry the columns the reports sum (INCLUDE), so the reports
read the index alone (an index-only scan) instead of the tables.

* buckets with points left, by program and customer (spendable, pending, bands,
  the customers holding something);
* ledger entries by program and effective instant (the roll-forward, the first
  instant of the program's history);
* accounts in debt, and credits not yet settled against debt: the few accounts a
  report recounts one by one.

Revision ID: 0006_reporting_indexes
Revises: 0004_order_aggregate
Create Date: 2026-11-30 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_reporting_indexes"
down_revision: str | None = "0004_order_aggregate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_buckets_live_by_program",
        "buckets",
        ["program_id", "customer_id"],
        postgresql_include=["source", "remaining", "available_at", "expires_at"],
        postgresql_where=sa.text("remaining > 0"),
        sqlite_where=sa.text("remaining > 0"),
    )
    op.create_index(
        "ix_buckets_unsettled",
        "buckets",
        ["program_id", "customer_id"],
        postgresql_where=sa.text("NOT settled"),
        sqlite_where=sa.text("NOT settled"),
    )
    op.create_index(
        "ix_ledger_entries_program_effective",
        "ledger_entries",
        ["program_id", "effective_at"],
        postgresql_include=["kind", "source", "points", "bucket_id"],
    )
    op.create_index(
        "ix_accounts_in_debt",
        "accounts",
        ["program_id"],
        postgresql_where=sa.text("debt_points > 0"),
        sqlite_where=sa.text("debt_points > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_accounts_in_debt", table_name="accounts")
    op.drop_index("ix_ledger_entries_program_effective", table_name="ledger_entries")
    op.drop_index("ix_buckets_unsettled", table_name="buckets")
    op.drop_index("ix_buckets_live_by_program", table_name="buckets")
