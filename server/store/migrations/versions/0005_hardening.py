"""service secrets: the key that signs ledger page tokens

ListLedgerEntries page tokens carry an HMAC (SPEC §7: bound to their program and
customer, tamper-evident). The key is made here, once per database, so that every
process and host serving it shares it.

Revision ID: 0005_hardening
Revises: 0003
Create Date: 2026-11-30 22:30:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_hardening"
down_revision: str | None = "0003"
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


def downgrade() -> None:
    op.drop_table("service_secrets")
