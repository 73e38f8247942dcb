"""running totals for GetLiability, kept by triggers on buckets (PostgreSQL)

GetLiability summed every live bucket of a program (11 million rows at a million
accounts: 40–90 s). These tables keep what it needs as the buckets change, in the same
transaction as the change, so the report reads a few thousand rows instead
(docs/finance.md, "How it stays fast"):

* `reporting_bucket_totals`: points left (Σ remaining) per program, source, hour the
  points become spendable and hour they expire ('infinity': never), folded;
* `reporting_bucket_changes`: the changes not folded yet, one row per bucket write,
  append-only with no key and no index, so writes of different customers never wait on
  one row; the server folds them into the totals on its expiry tick;
* `reporting_accounts_live`: per account, the latest expiry among its buckets with points
  left ('infinity': one never expires; '-infinity': none left), indexed by program and
  that instant: the accounts holding points at `now` are those whose instant is after it.

The trigger only touches the account being written (its row is locked by the write
already). `reporting_rebuild_totals()` recomputes all three from the buckets; the
migration fills them with it, under the lock CREATE TRIGGER takes on the buckets (no
write falls between the fill and the trigger). SQLite keeps summing the buckets.

The reports' index on live buckets goes from (program, customer) to (program, expiry,
availability): the report reads the buckets of the few hours the totals cannot split
(those holding `now` or a band's edge) through it. One index either way: a bucket write
maintains as many indexes as before.

Revision ID: 0007_reporting_totals
Revises: 0006_reporting_indexes
Create Date: 2026-12-01 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_reporting_totals"
down_revision: str | None = "0006_reporting_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = """
CREATE TABLE reporting_bucket_totals (
    program_id VARCHAR(256) NOT NULL,
    source VARCHAR(256) NOT NULL,
    available_hour TIMESTAMPTZ NOT NULL,
    expires_hour TIMESTAMPTZ NOT NULL,
    points NUMERIC NOT NULL,
    CONSTRAINT pk_reporting_bucket_totals
        PRIMARY KEY (program_id, source, available_hour, expires_hour)
);
CREATE TABLE reporting_bucket_changes (
    program_id VARCHAR(256) NOT NULL,
    source VARCHAR(256) NOT NULL,
    available_hour TIMESTAMPTZ NOT NULL,
    expires_hour TIMESTAMPTZ NOT NULL,
    points BIGINT NOT NULL
);
CREATE TABLE reporting_accounts_live (
    program_id VARCHAR(256) NOT NULL,
    customer_id VARCHAR(256) NOT NULL,
    live_until TIMESTAMPTZ NOT NULL,
    CONSTRAINT pk_reporting_accounts_live PRIMARY KEY (program_id, customer_id)
);
CREATE INDEX ix_reporting_accounts_live_until ON reporting_accounts_live (program_id, live_until);
"""

# The hour an instant falls in, in UTC whatever the session's time zone.
_HOUR = """
CREATE FUNCTION reporting_hour(at TIMESTAMPTZ) RETURNS TIMESTAMPTZ
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(date_bin('1 hour', at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), 'infinity');
"""

_TRIGGER_FUNCTION = """
CREATE FUNCTION reporting_bucket_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_live BOOLEAN := TG_OP <> 'INSERT' AND OLD.remaining > 0;
    is_live BOOLEAN := TG_OP <> 'DELETE' AND NEW.remaining > 0;
    same_cell BOOLEAN := TG_OP = 'UPDATE'
        AND OLD.program_id = NEW.program_id AND OLD.source = NEW.source
        AND OLD.available_at = NEW.available_at
        AND OLD.expires_at IS NOT DISTINCT FROM NEW.expires_at;
    same_account BOOLEAN := same_cell AND OLD.customer_id = NEW.customer_id;
    latest TIMESTAMPTZ;
BEGIN
    -- The points left, per cell: one row per write.
    IF same_cell THEN
        INSERT INTO reporting_bucket_changes VALUES (NEW.program_id, NEW.source,
            reporting_hour(NEW.available_at), reporting_hour(NEW.expires_at),
            NEW.remaining - OLD.remaining);
    ELSE
        IF was_live THEN
            INSERT INTO reporting_bucket_changes VALUES (OLD.program_id, OLD.source,
                reporting_hour(OLD.available_at), reporting_hour(OLD.expires_at),
                -OLD.remaining);
        END IF;
        IF is_live THEN
            INSERT INTO reporting_bucket_changes VALUES (NEW.program_id, NEW.source,
                reporting_hour(NEW.available_at), reporting_hour(NEW.expires_at),
                NEW.remaining);
        END IF;
    END IF;
    -- The account's latest live expiry: a bucket coming alive can only push it later;
    -- one going empty can only bring it earlier, and only if it was that bucket's.
    IF is_live AND NOT (was_live AND same_account) THEN
        INSERT INTO reporting_accounts_live AS l
        VALUES (NEW.program_id, NEW.customer_id, coalesce(NEW.expires_at, 'infinity'))
        ON CONFLICT (program_id, customer_id) DO UPDATE SET live_until = excluded.live_until
        WHERE l.live_until < excluded.live_until;
    END IF;
    IF was_live AND NOT (is_live AND same_account) THEN
        SELECT l.live_until INTO latest FROM reporting_accounts_live AS l
        WHERE l.program_id = OLD.program_id AND l.customer_id = OLD.customer_id;
        IF latest <= coalesce(OLD.expires_at, 'infinity') THEN
            UPDATE reporting_accounts_live SET live_until = coalesce((
                SELECT coalesce(b.expires_at, 'infinity') FROM buckets AS b
                WHERE b.program_id = OLD.program_id AND b.customer_id = OLD.customer_id
                  AND b.remaining > 0
                ORDER BY b.expires_at DESC NULLS FIRST LIMIT 1), '-infinity')
            WHERE program_id = OLD.program_id AND customer_id = OLD.customer_id;
        END IF;
    END IF;
    RETURN NULL;
END $$;
"""

_TRIGGERS = """
CREATE FUNCTION reporting_buckets_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM reporting_bucket_changes;
    DELETE FROM reporting_bucket_totals;
    DELETE FROM reporting_accounts_live;
    RETURN NULL;
END $$;
CREATE TRIGGER reporting_bucket_inserted AFTER INSERT ON buckets
    FOR EACH ROW EXECUTE FUNCTION reporting_bucket_changed();
CREATE TRIGGER reporting_bucket_updated AFTER UPDATE ON buckets FOR EACH ROW
    WHEN (OLD.remaining IS DISTINCT FROM NEW.remaining
          OR OLD.program_id IS DISTINCT FROM NEW.program_id
          OR OLD.customer_id IS DISTINCT FROM NEW.customer_id
          OR OLD.source IS DISTINCT FROM NEW.source
          OR OLD.available_at IS DISTINCT FROM NEW.available_at
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION reporting_bucket_changed();
CREATE TRIGGER reporting_bucket_deleted AFTER DELETE ON buckets
    FOR EACH ROW EXECUTE FUNCTION reporting_bucket_changed();
CREATE TRIGGER reporting_buckets_truncated AFTER TRUNCATE ON buckets
    FOR EACH STATEMENT EXECUTE FUNCTION reporting_buckets_truncated();
"""

# Everything again from the buckets (the migration's fill; a bulk load that ran with the
# triggers off calls it once after). No bucket write falls between its statements.
_REBUILD = """
CREATE FUNCTION reporting_rebuild_totals() RETURNS void LANGUAGE sql AS $$
    LOCK TABLE buckets IN SHARE MODE;
    DELETE FROM reporting_bucket_changes;
    DELETE FROM reporting_bucket_totals;
    DELETE FROM reporting_accounts_live;
    INSERT INTO reporting_bucket_totals
    SELECT program_id, source, reporting_hour(available_at), reporting_hour(expires_at),
           sum(remaining)
    FROM buckets WHERE remaining > 0 GROUP BY 1, 2, 3, 4;
    INSERT INTO reporting_accounts_live
    SELECT program_id, customer_id,
           max(coalesce(expires_at, 'infinity'::timestamptz))
    FROM buckets WHERE remaining > 0 GROUP BY 1, 2;
$$;
"""


def upgrade() -> None:
    op.drop_index("ix_buckets_live_by_program", table_name="buckets")
    op.create_index(
        "ix_buckets_live_by_expiry",
        "buckets",
        ["program_id", "expires_at", "available_at"],
        postgresql_include=["source", "remaining"],
        postgresql_where=sa.text("remaining > 0"),
        sqlite_where=sa.text("remaining > 0"),
    )
    if op.get_context().dialect.name != "postgresql":
        return
    for ddl in (_TABLES, _HOUR, _TRIGGER_FUNCTION, _TRIGGERS, _REBUILD):
        op.execute(ddl)
    op.execute("SELECT reporting_rebuild_totals()")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for trigger in ("bucket_inserted", "bucket_updated", "bucket_deleted",
                        "buckets_truncated"):  # fmt: skip
            op.execute(f"DROP TRIGGER reporting_{trigger} ON buckets")
        op.execute("DROP FUNCTION reporting_rebuild_totals()")
        op.execute("DROP FUNCTION reporting_buckets_truncated()")
        op.execute("DROP FUNCTION reporting_bucket_changed()")
        op.execute("DROP FUNCTION reporting_hour(TIMESTAMPTZ)")
        for table in ("reporting_accounts_live", "reporting_bucket_changes",
                      "reporting_bucket_totals"):  # fmt: skip
            op.drop_table(table)
    op.drop_index("ix_buckets_live_by_expiry", table_name="buckets")
    op.create_index(
        "ix_buckets_live_by_program",
        "buckets",
        ["program_id", "customer_id"],
        postgresql_include=["source", "remaining", "available_at", "expires_at"],
        postgresql_where=sa.text("remaining > 0"),
        sqlite_where=sa.text("remaining > 0"),
    )
