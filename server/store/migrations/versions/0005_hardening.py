"""service secrets, and what a lapsed hold paid of the debt

ListLedgerEntries page tokens carry an HMAC (docs/rules.md §7: bound to their program and
customer, tamper-evident). The key is made here, once per database, so that every
process and host serving it shares it.

A read at an `as_of` before a hold's deadline sees the hold live even when its lapse
is written down already (docs/rules.md §7); `lapse_paid_debt_points` keeps what the lapse paid
of the debt so the read can put it back exactly. Existing lapses get 0: before this
revision a lapse wrote no record of it (a read of one that paid debt at an earlier
`as_of` puts back the points, not the debt).

Revision ID: 0005_hardening
Revises: 0004_order_aggregate
Create Date: 2026-11-30 22:30:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_hardening"
down_revision: str | None = "0004_order_aggregate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "length(secret) >= 32", name=op.f("ck_service_secrets_secret_long_enough")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_service_secrets")),
    )
    op.bulk_insert(table, [{"name": "page_token", "secret": secrets.token_bytes(32)}])
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lapse_paid_debt_points", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.create_check_constraint(
            "lapse_paid_debt_within_points",
            "lapse_paid_debt_points >= 0 AND lapse_paid_debt_points <= points",
        )
        batch_op.create_index(
            "ix_redemptions_lapsed",
            ["program_id", "customer_id", "hold_expires_at"],
            unique=False,
            postgresql_where=sa.text("state = 'EXPIRED'"),
            sqlite_where=sa.text("state = 'EXPIRED'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_redemptions_lapsed")
        batch_op.drop_constraint(
            op.f("ck_redemptions_lapse_paid_debt_within_points"), type_="check"
        )
        batch_op.drop_column("lapse_paid_debt_points")
    op.drop_table("service_secrets")
