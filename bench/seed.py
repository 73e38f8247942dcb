"""Accounts with 20 buckets each (and their GRANT ledger entries), written straight to the tables.

PostgreSQL is loaded set-wise with `generate_series` (a million accounts in minutes, not the
hours the API would take); SQLite, which only ever holds the small runs, with executemany.
`history=True` also gives each account a past redemption and its idempotency key, so the
order and request-id uniqueness checks run against tables as large as the accounts.
"""

from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import create_engine, func, insert, select

from server.store.db import normalize_url
from server.store.schema import accounts, buckets, ledger_entries

_PG_ACCOUNTS = """
INSERT INTO accounts (program_id, customer_id, created_at)
SELECT %(program)s, %(prefix)s || i, now() FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
"""
_PG_BUCKETS = """
INSERT INTO buckets (program_id, customer_id, source, granted, remaining, available_at,
                     expires_at, origin, created_at)
SELECT %(program)s, %(prefix)s || i,
       (%(sources)s::text[])[1 + b %% cardinality(%(sources)s::text[])],
       %(points)s, %(points)s, now() - interval '1 day', now() + (100 + 5 * b) * interval '1 day',
       'GRANT', now()
FROM generate_series(%(lo)s::int, %(hi)s::int) AS i, generate_series(0, %(per)s::int - 1) AS b
"""
_PG_LEDGER = """
INSERT INTO ledger_entries (program_id, customer_id, kind, points, source, bucket_id,
                            request_id, reason, effective_at, recorded_at)
SELECT program_id, customer_id, 'GRANT', granted, source, bucket_id, 'seed-' || bucket_id,
       'seed', available_at, created_at
FROM buckets WHERE bucket_id > %(after)s
"""
_PG_HISTORY = [
    """
INSERT INTO orders (program_id, order_id, customer_id, created_at)
SELECT %(program)s, 'seed-' || %(prefix)s || i, %(prefix)s || i, now() - interval '2 days'
FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
""",
    """
INSERT INTO order_lines (program_id, order_id, line_id, position, sku, quantity,
                         unit_price_minor)
SELECT %(program)s, 'seed-' || %(prefix)s || i, 'l0', 0, 'seed', 1, 100000
FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
""",
    """
INSERT INTO redemptions (redemption_id, program_id, order_id, customer_id, state, points,
                         discount_minor, program_version, created_at, updated_at)
SELECT md5(%(prefix)s || i)::uuid::text, %(program)s, 'seed-' || %(prefix)s || i,
       %(prefix)s || i, 'APPLIED', 10, 1000, 1, now() - interval '2 days', now() - interval '2 days'
FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
""",
    """
INSERT INTO redemption_lines (redemption_id, line_id, position, quantity, points, discount_minor)
SELECT md5(%(prefix)s || i)::uuid::text, 'l0', 0, 1, 10, 1000
FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
""",
    """
INSERT INTO idempotency_keys (program_id, request_id, method, fingerprint, response, created_at)
SELECT %(program)s, 'seed-' || %(prefix)s || i || '-apply', 'ApplyRedemption', '\\x00', '\\x00',
       now() - interval '2 days'
FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
""",
]


_TABLES = ("accounts", "buckets", "ledger_entries", "orders", "order_lines", "redemptions",
           "redemption_lines", "idempotency_keys")  # fmt: skip
_FOREIGN_KEYS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE contype = 'f' AND conrelid::regclass::text = ANY(%(tables)s)
"""
_INDEXES = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
WHERE i.indrelid::regclass::text = ANY(%(tables)s) AND NOT i.indisprimary AND NOT i.indisunique
"""


def _without_checks(conn: psycopg.Connection) -> list[str]:
    """Drop the foreign keys and secondary indexes of the loaded tables; returns their DDL.

    A bulk load then writes heap pages only, and the indexes are built once, sorted,
    and the keys checked in one join each: minutes instead of most of an hour.
    """
    args = {"tables": list(_TABLES)}
    ddl = []
    for table, name, definition in conn.execute(_FOREIGN_KEYS, args).fetchall():
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        ddl.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for name, definition in conn.execute(_INDEXES, args).fetchall():
        conn.execute(f"DROP INDEX {name}")
        ddl.insert(0, definition)  # indexes first: the key checks use them
    return ddl


def rebuild_totals(conn: psycopg.Connection) -> None:
    """After a load with the triggers off (session_replication_role = replica): the
    finance reports' running totals from the buckets, once (migration 0007)."""
    conn.execute("SELECT reporting_rebuild_totals()")


def customer_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def seed(
    url: str,
    *,
    program_id: str,
    sources: list[str],
    prefix: str,
    count: int,
    per_account: int = 20,
    points: int = 5_000,
    history: bool = False,
    batch: int = 100_000,
) -> None:
    """Give `count` accounts named prefix0… `per_account` spendable buckets of `points` each."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        _seed_sqlite(url, program_id, sources, prefix, count, per_account, points)
        return
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET session_replication_role = replica")  # no trigger per row
        ddl = _without_checks(conn) if count >= batch else []
        for lo in range(0, count, batch):
            hi = min(count, lo + batch) - 1
            args = {
                "program": program_id,
                "prefix": prefix,
                "sources": sources,
                "points": points,
                "per": per_account,
                "lo": lo,
                "hi": hi,
            }
            after = conn.execute("SELECT coalesce(max(bucket_id), 0) FROM buckets").fetchone()
            conn.execute(_PG_ACCOUNTS, args)
            conn.execute(_PG_BUCKETS, args)
            conn.execute(_PG_LEDGER, {"after": after[0] if after else 0})
            if history:
                for statement in _PG_HISTORY:
                    conn.execute(statement, args)
            conn.commit()
        for statement in ddl:
            conn.execute(statement)
        rebuild_totals(conn)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def _seed_sqlite(
    url: str,
    program_id: str,
    sources: list[str],
    prefix: str,
    count: int,
    per_account: int,
    points: int,
) -> None:
    now = datetime.now(UTC)
    engine = create_engine(url)
    with engine.begin() as conn:
        names = customer_ids(prefix, count)
        conn.execute(
            insert(accounts),
            [{"program_id": program_id, "customer_id": c, "created_at": now} for c in names],
        )
        first = conn.execute(select(func.coalesce(func.max(buckets.c.bucket_id), 0))).scalar_one()
        conn.execute(
            insert(buckets),
            [
                {
                    "program_id": program_id,
                    "customer_id": c,
                    "source": sources[b % len(sources)],
                    "granted": points,
                    "remaining": points,
                    "available_at": now - timedelta(days=1),
                    "expires_at": now + timedelta(days=100 + 5 * b),
                    "origin": "GRANT",
                    "created_at": now,
                }
                for c in names
                for b in range(per_account)
            ],
        )
        rows = conn.execute(
            buckets.select().where(buckets.c.bucket_id > first).order_by(buckets.c.bucket_id)
        ).all()
        conn.execute(
            insert(ledger_entries),
            [
                {
                    "program_id": r.program_id,
                    "customer_id": r.customer_id,
                    "kind": "GRANT",
                    "points": r.granted,
                    "source": r.source,
                    "bucket_id": r.bucket_id,
                    "request_id": f"seed-{r.bucket_id}",
                    "reason": "seed",
                    "effective_at": r.available_at,
                    "recorded_at": r.created_at,
                }
                for r in rows
            ],
        )
    engine.dispose()
