"""the order as one aggregate: orders and their whole lines; redemption attempts

An order (docs/rules.md §6) is one customer's: `orders` records it and `order_lines` its lines,
whole; redemptions and accruals refer to it. An order may have several redemption
attempts (a payment retry after a released or lapsed hold), at most one of them live,
so UNIQUE(program_id, order_id) on redemptions becomes a partial unique index over the
live states and each attempt is numbered.

Existing rows move without loss:

* each redemption makes its order (its customer; its created_at); an accrual without
  a redemption makes its own. An accrual that names another customer than its order's
  redemption (possible before this revision) keeps its customer_id; `reconcile`
  reports it, and returns refuse it (ORDER_CUSTOMER_MISMATCH) rather than touch two
  accounts;
* order_lines come from the redemption's lines (quantity, position, returned_units),
  then from the accrual's lines the order does not have yet. What was never recorded
  before gets a default and `whole` = false: sku, category and brand '', tags '[]',
  kind 'GOODS', unit_price_minor, discount_minor and promo_discount_minor 0. An
  accrual is checked against such a line's id and quantity only;
* every existing redemption is attempt 1.

Revision ID: 0004_order_aggregate
Revises: 0003
Create Date: 2026-11-30 22:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_order_aggregate"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 256
LIVE = "state IN ('HELD', 'APPLIED', 'PARTIALLY_REVERSED', 'REVERSED')"
UtcDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    # On SQLite the tables below are altered by copying them; server/store/migrate.py turns
    # foreign keys off for that and checks them all before committing.
    _create_orders()
    _move_orders()
    op.drop_index("ix_redemptions_held", table_name="redemptions")
    with op.batch_alter_table("redemptions") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))
        batch.drop_constraint("uq_redemptions_program_id", type_="unique")
        batch.create_unique_constraint(
            "uq_redemptions_order_attempt", ["program_id", "order_id", "attempt"]
        )
        batch.create_check_constraint("ck_redemptions_attempt_positive", "attempt > 0")
        batch.create_foreign_key(
            "fk_redemptions_program_id_orders",
            "orders",
            ["program_id", "order_id"],
            ["program_id", "order_id"],
        )
    _redemption_indexes()
    with op.batch_alter_table("accruals") as batch:
        batch.create_foreign_key(
            "fk_accruals_program_id_orders",
            "orders",
            ["program_id", "order_id"],
            ["program_id", "order_id"],
        )


def _create_orders() -> None:
    op.create_table(
        "orders",
        sa.Column("program_id", sa.String(length=ID), nullable=False),
        sa.Column("order_id", sa.String(length=ID), nullable=False),
        sa.Column("customer_id", sa.String(length=ID), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id", "customer_id"],
            ["accounts.program_id", "accounts.customer_id"],
            name="fk_orders_program_id_accounts",
        ),
        sa.PrimaryKeyConstraint("program_id", "order_id", name="pk_orders"),
    )
    op.create_table(
        "order_lines",
        sa.Column("program_id", sa.String(length=ID), nullable=False),
        sa.Column("order_id", sa.String(length=ID), nullable=False),
        sa.Column("line_id", sa.String(length=ID), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=ID), server_default="", nullable=False),
        sa.Column("category", sa.String(length=ID), server_default="", nullable=False),
        sa.Column("brand", sa.String(length=ID), server_default="", nullable=False),
        sa.Column("tags", sa.Text(), server_default="[]", nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="GOODS", nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit_price_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("promo_discount_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("returned_units", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("whole", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_order_lines_quantity_positive"),
        sa.CheckConstraint("kind IN ('GOODS', 'SERVICE')", name="ck_order_lines_kind_known"),
        sa.CheckConstraint(
            "unit_price_minor >= 0 AND discount_minor >= 0 AND promo_discount_minor >= 0",
            name="ck_order_lines_amounts_not_negative",
        ),
        sa.CheckConstraint(
            "returned_units >= 0 AND returned_units <= quantity",
            name="ck_order_lines_returned_within_quantity",
        ),
        sa.ForeignKeyConstraint(
            ["program_id", "order_id"],
            ["orders.program_id", "orders.order_id"],
            name="fk_order_lines_program_id_orders",
        ),
        sa.PrimaryKeyConstraint("program_id", "order_id", "line_id", name="pk_order_lines"),
    )


def _move_orders() -> None:
    op.execute(
        "INSERT INTO orders (program_id, order_id, customer_id, created_at) "
        "SELECT program_id, order_id, customer_id, created_at FROM redemptions"
    )
    op.execute(
        "INSERT INTO orders (program_id, order_id, customer_id, created_at) "
        "SELECT a.program_id, a.order_id, a.customer_id, a.created_at FROM accruals a "
        "WHERE NOT EXISTS (SELECT 1 FROM orders o "
        "WHERE o.program_id = a.program_id AND o.order_id = a.order_id)"
    )
    columns = "program_id, order_id, line_id, position, quantity, returned_units, whole"
    op.get_bind().execute(
        sa.text(
            f"INSERT INTO order_lines ({columns}) "
            "SELECT r.program_id, r.order_id, l.line_id, l.position, l.quantity, "
            "l.returned_units, :whole "
            "FROM redemption_lines l JOIN redemptions r ON r.redemption_id = l.redemption_id"
        ),
        {"whole": False},
    )
    op.get_bind().execute(
        sa.text(
            f"INSERT INTO order_lines ({columns}) "
            "SELECT a.program_id, a.order_id, l.line_id, l.position, l.quantity, "
            "l.returned_units, :whole "
            "FROM accrual_lines l JOIN accruals a ON a.accrual_id = l.accrual_id "
            "WHERE NOT EXISTS (SELECT 1 FROM order_lines o WHERE o.program_id = a.program_id "
            "AND o.order_id = a.order_id AND o.line_id = l.line_id)"
        ),
        {"whole": False},
    )


def _redemption_indexes() -> None:
    op.create_index(
        "ix_redemptions_held",
        "redemptions",
        ["program_id", "customer_id"],
        unique=False,
        postgresql_where=sa.text("state = 'HELD'"),
        sqlite_where=sa.text("state = 'HELD'"),
    )
    op.create_index(
        "uq_redemptions_live_order",
        "redemptions",
        ["program_id", "order_id"],
        unique=True,
        postgresql_where=sa.text(LIVE),
        sqlite_where=sa.text(LIVE),
    )


def downgrade() -> None:
    # Fails on an order with more than one redemption attempt: the old schema holds one.
    op.drop_index("uq_redemptions_live_order", table_name="redemptions")
    op.drop_index("ix_redemptions_held", table_name="redemptions")
    with op.batch_alter_table("accruals") as batch:
        batch.drop_constraint("fk_accruals_program_id_orders", type_="foreignkey")
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_constraint("fk_redemptions_program_id_orders", type_="foreignkey")
        batch.drop_constraint("ck_redemptions_attempt_positive", type_="check")
        batch.drop_constraint("uq_redemptions_order_attempt", type_="unique")
        batch.create_unique_constraint("uq_redemptions_program_id", ["program_id", "order_id"])
        batch.drop_column("attempt")
    op.create_index(
        "ix_redemptions_held",
        "redemptions",
        ["program_id", "customer_id"],
        unique=False,
        postgresql_where=sa.text("state = 'HELD'"),
        sqlite_where=sa.text("state = 'HELD'"),
    )
    op.drop_table("order_lines")
    op.drop_table("orders")
