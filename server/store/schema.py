"""The tables. Each guards itself: CHECK for amounts, UNIQUE for one-per-order, foreign keys."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)

from server.store.types import Id, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 256  # ids from callers: program, customer, order, line, source
REQUEST_ID = 128

accounts = Table(
    "accounts",
    metadata,
    Column("program_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), primary_key=True),
    Column("debt_points", BigInteger, nullable=False, server_default="0"),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("debt_points >= 0", name="debt_not_negative"),
    # The finance reports (migration 0006): the few accounts in debt.
    Index(
        "ix_accounts_in_debt",
        "program_id",
        postgresql_where=text("debt_points > 0"),
        sqlite_where=text("debt_points > 0"),
    ),
)


def _account_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["program_id", "customer_id"], ["accounts.program_id", "accounts.customer_id"]
    )


buckets = Table(
    "buckets",
    metadata,
    Column("bucket_id", Id, primary_key=True, autoincrement=True),
    Column("program_id", String(ID), nullable=False),
    Column("customer_id", String(ID), nullable=False),
    Column("source", String(ID), nullable=False),
    Column("granted", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("available_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("origin", String(16), nullable=False),
    Column("order_id", String(ID), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # False until a credit that pays debt at maturity (an accrual) has matured and paid it.
    Column("settled", Boolean, nullable=False, server_default=true()),
    # Points the expiry job (or a return into an expired bucket) wrote down as EXPIRY,
    # less those a clawback of the order that earned them took back since.
    Column("expired_points", BigInteger, nullable=False, server_default="0"),
    _account_fk(),
    CheckConstraint("remaining >= 0", name="remaining_not_negative"),
    CheckConstraint("expired_points >= 0", name="expired_not_negative"),
    CheckConstraint("remaining <= granted", name="remaining_within_granted"),
    CheckConstraint("origin IN ('GRANT', 'ACCRUAL')", name="origin_known"),
    CheckConstraint(
        "expires_at IS NULL OR expires_at > available_at", name="expires_after_available"
    ),
    Index("ix_buckets_account", "program_id", "customer_id", "expires_at"),
    Index("ix_buckets_expiry", "expires_at"),
    # The finance reports (migrations 0006, 0007): a program's buckets with points left by
    # expiry, and its credits not yet settled against debt. On PostgreSQL triggers keep
    # running totals of the buckets in tables of their own (server/store/reporting.py).
    Index(
        "ix_buckets_live_by_expiry",
        "program_id",
        "expires_at",
        "available_at",
        postgresql_include=["source", "remaining"],
        postgresql_where=text("remaining > 0"),
        sqlite_where=text("remaining > 0"),
    ),
    Index(
        "ix_buckets_unsettled",
        "program_id",
        "customer_id",
        postgresql_where=text("NOT settled"),
        sqlite_where=text("NOT settled"),
    ),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("entry_id", Id, primary_key=True, autoincrement=True),
    Column("program_id", String(ID), nullable=False),
    Column("customer_id", String(ID), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("source", String(ID), nullable=False, server_default=""),
    Column("bucket_id", Id, nullable=True),
    Column("order_id", String(ID), nullable=True),
    Column("request_id", String(REQUEST_ID), nullable=True),
    Column("reason", String(ID), nullable=False, server_default=""),
    Column("effective_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    _account_fk(),
    ForeignKeyConstraint(["bucket_id"], ["buckets.bucket_id"]),
    CheckConstraint(
        "kind IN ('GRANT', 'ACCRUAL', 'REDEMPTION', 'HOLD', 'RELEASE', 'REVERSAL', "
        "'CLAWBACK', 'DEBT', 'EXPIRY')",
        name="kind_known",
    ),
    CheckConstraint("points <> 0", name="points_not_zero"),
    Index("ix_ledger_entries_account", "program_id", "customer_id", "effective_at", "entry_id"),
    # The roll-forward (migration 0006): a program's ledger up to an instant.
    Index(
        "ix_ledger_entries_program_effective",
        "program_id",
        "effective_at",
        postgresql_include=["kind", "source", "points", "bucket_id"],
    ),
)

orders = Table(
    "orders",
    metadata,
    Column("program_id", String(ID), primary_key=True),
    Column("order_id", String(ID), primary_key=True),
    # Every redemption attempt, accrual and return of the order is this customer's
    # (docs/rules.md §6).
    Column("customer_id", String(ID), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    _account_fk(),
)


def _order_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["program_id", "order_id"], ["orders.program_id", "orders.order_id"]
    )


# The order's lines as its first ApplyRedemption or AccrueOrder recorded them, whole (a
# what-if replay prices them again). `whole` is false for lines migrated from before
# orders were recorded: only line_id, quantity and returned_units are known there; sku,
# category, brand are '', tags '[]', kind 'GOODS', prices and discounts 0.
order_lines = Table(
    "order_lines",
    metadata,
    Column("program_id", String(ID), primary_key=True),
    Column("order_id", String(ID), primary_key=True),
    Column("line_id", String(ID), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("sku", String(ID), nullable=False, server_default=""),
    Column("category", String(ID), nullable=False, server_default=""),
    Column("brand", String(ID), nullable=False, server_default=""),
    Column("tags", Text, nullable=False, server_default="[]"),  # a JSON array of strings
    Column("kind", String(16), nullable=False, server_default="GOODS"),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False, server_default="0"),
    Column("discount_minor", BigInteger, nullable=False, server_default="0"),
    Column("promo_discount_minor", BigInteger, nullable=False, server_default="0"),
    Column("returned_units", BigInteger, nullable=False, server_default="0"),
    Column("whole", Boolean, nullable=False, server_default=true()),
    _order_fk(),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("kind IN ('GOODS', 'SERVICE')", name="kind_known"),
    CheckConstraint(
        "unit_price_minor >= 0 AND discount_minor >= 0 AND promo_discount_minor >= 0",
        name="amounts_not_negative",
    ),
    CheckConstraint(
        "returned_units >= 0 AND returned_units <= quantity", name="returned_within_quantity"
    ),
)

# A redemption that holds its order: at most one per order (docs/rules.md §6).
LIVE_REDEMPTION = "state IN ('HELD', 'APPLIED', 'PARTIALLY_REVERSED', 'REVERSED')"

redemptions = Table(
    "redemptions",
    metadata,
    Column("redemption_id", String(36), primary_key=True),
    Column("program_id", String(ID), nullable=False),
    Column("order_id", String(ID), nullable=False),
    Column("customer_id", String(ID), nullable=False),
    Column("state", String(24), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("discount_minor", BigInteger, nullable=False),
    Column("points_reversed", BigInteger, nullable=False, server_default="0"),
    Column("payment_method", String(ID), nullable=False, server_default=""),
    Column("program_version", BigInteger, nullable=False),
    Column("hold_expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # 1 for the order's first attempt; a retry after a released or lapsed hold is the next.
    Column("attempt", Integer, nullable=False, server_default="1"),
    # What a lapsed hold's points paid of the account's debt when the lapse was written
    # down: a read at an `as_of` before the deadline puts them back exactly (docs/rules.md §7).
    Column("lapse_paid_debt_points", BigInteger, nullable=False, server_default="0"),
    _account_fk(),
    _order_fk(),
    UniqueConstraint("program_id", "order_id", "attempt", name="uq_redemptions_order_attempt"),
    CheckConstraint("points > 0", name="points_positive"),
    CheckConstraint("attempt > 0", name="attempt_positive"),
    CheckConstraint(
        "lapse_paid_debt_points >= 0 AND lapse_paid_debt_points <= points",
        name="lapse_paid_debt_within_points",
    ),
    CheckConstraint(
        "points_reversed >= 0 AND points_reversed <= points", name="reversed_within_points"
    ),
    CheckConstraint(
        "state IN ('HELD', 'APPLIED', 'PARTIALLY_REVERSED', 'REVERSED', 'RELEASED', 'EXPIRED')",
        name="state_known",
    ),
    # An account's live holds, read by every call on it: few rows, so a partial index.
    Index(
        "ix_redemptions_held",
        "program_id",
        "customer_id",
        postgresql_where=text("state = 'HELD'"),
        sqlite_where=text("state = 'HELD'"),
    ),
    Index(
        "uq_redemptions_live_order",
        "program_id",
        "order_id",
        unique=True,
        postgresql_where=text(LIVE_REDEMPTION),
        sqlite_where=text(LIVE_REDEMPTION),
    ),
    # Lapses written down, by deadline: a read asks whether one lapsed after its `as_of`.
    Index(
        "ix_redemptions_lapsed",
        "program_id",
        "customer_id",
        "hold_expires_at",
        postgresql_where=text("state = 'EXPIRED'"),
        sqlite_where=text("state = 'EXPIRED'"),
    ),
)

redemption_lines = Table(
    "redemption_lines",
    metadata,
    Column("redemption_id", String(36), primary_key=True),
    Column("line_id", String(ID), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("discount_minor", BigInteger, nullable=False),
    Column("returned_units", BigInteger, nullable=False, server_default="0"),
    ForeignKeyConstraint(["redemption_id"], ["redemptions.redemption_id"]),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("points >= 0", name="points_not_negative"),
    CheckConstraint(
        "returned_units >= 0 AND returned_units <= quantity", name="returned_within_quantity"
    ),
)

redemption_debits = Table(
    "redemption_debits",
    metadata,
    Column("redemption_id", String(36), primary_key=True),
    Column("bucket_id", Id, primary_key=True),
    Column("points_taken", BigInteger, nullable=False),
    Column("points_returned", BigInteger, nullable=False, server_default="0"),
    ForeignKeyConstraint(["redemption_id"], ["redemptions.redemption_id"]),
    ForeignKeyConstraint(["bucket_id"], ["buckets.bucket_id"]),
    CheckConstraint("points_taken > 0", name="taken_positive"),
    CheckConstraint(
        "points_returned >= 0 AND points_returned <= points_taken", name="returned_within_taken"
    ),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("program_id", String(ID), primary_key=True),
    Column("request_id", String(REQUEST_ID), primary_key=True),
    Column("method", String(64), nullable=False),
    Column("fingerprint", LargeBinary, nullable=False),
    Column("response", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

accruals = Table(
    "accruals",
    metadata,
    Column("accrual_id", String(36), primary_key=True),
    Column("program_id", String(ID), nullable=False),
    Column("order_id", String(ID), nullable=False),
    Column("customer_id", String(ID), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("base_minor", BigInteger, nullable=False),
    # What returns took off the base: tiers count base_minor − base_returned_minor.
    Column("base_returned_minor", BigInteger, nullable=False, server_default="0"),
    Column("points_clawed_back", BigInteger, nullable=False, server_default="0"),
    Column("bucket_id", Id, nullable=True),
    Column("tier_id", String(ID), nullable=False),
    Column("earn_rate_bp", Integer, nullable=False),
    Column("program_version", BigInteger, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=False),
    Column("available_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    _account_fk(),
    _order_fk(),
    ForeignKeyConstraint(["bucket_id"], ["buckets.bucket_id"]),
    UniqueConstraint("program_id", "order_id"),
    CheckConstraint("points >= 0", name="points_not_negative"),
    CheckConstraint("base_minor >= 0", name="base_not_negative"),
    CheckConstraint(
        "base_returned_minor >= 0 AND base_returned_minor <= base_minor",
        name="returned_within_base",
    ),
    CheckConstraint(
        "points_clawed_back >= 0 AND points_clawed_back <= points", name="clawback_within_points"
    ),
    Index("ix_accruals_account", "program_id", "customer_id", "available_at"),
)

accrual_lines = Table(
    "accrual_lines",
    metadata,
    Column("accrual_id", String(36), primary_key=True),
    Column("line_id", String(ID), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("base_minor", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("returned_units", BigInteger, nullable=False, server_default="0"),
    ForeignKeyConstraint(["accrual_id"], ["accruals.accrual_id"]),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("points >= 0 AND base_minor >= 0", name="amounts_not_negative"),
    CheckConstraint(
        "returned_units >= 0 AND returned_units <= quantity", name="returned_within_quantity"
    ),
)

# Keys the service keeps for itself, one row each, made at migration: `page_token` signs
# ListLedgerEntries page tokens, so that every process and host serving one database
# issues and accepts the same tokens.
service_secrets = Table(
    "service_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("secret", LargeBinary, nullable=False),
    CheckConstraint("length(secret) >= 32", name="secret_long_enough"),
)
