"""an index for an account's live holds

Every call on an account asks whether it holds anything; without this index that
question scanned the whole redemptions table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_redemptions_held",
        "redemptions",
        ["program_id", "customer_id"],
        unique=False,
        postgresql_where=sa.text("state = 'HELD'"),
        sqlite_where=sa.text("state = 'HELD'"),
    )


def downgrade() -> None:
    op.drop_index("ix_redemptions_held", table_name="redemptions")
