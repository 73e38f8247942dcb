"""What-if throughput: recorded 20-line orders replayed per second, and memory as the window grows.

    python -m bench.whatif [--orders 10000,50000,100000] [--out var/bench] [--workers N]

Seeds a fresh PostgreSQL database set-wise (orders of stomatorg customers, 20 lines each, half
of them with a redemption, a quarter delivered and accrued, one never-expiring grant per
customer), then runs `loyalty-server simulate`'s own code (`server.simulate.run`) on windows of
growing size with the partner cap lifted from 10 % to 12 %: orders per second, CPU per order
of the command and its worker processes, and the peak resident memory after each window,
which stays flat when the replay streams.
"""

import argparse
import json
import os
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from pricing.program import load_program
from server.config import SHIPPED_PROGRAMS
from server.simulate import Request, run, worker_count
from server.store.db import create_database_engine
from server.store.migrate import migrate
from server.store.order_history import Window
from tests.support.databases import fresh_postgres

START = datetime(2026, 1, 1, tzinfo=UTC)
ORDERS_PER_CUSTOMER = 5

_SEED = [
    """
INSERT INTO accounts (program_id, customer_id, created_at)
SELECT 'stomatorg', 'c' || i, %(start)s FROM generate_series(0, %(customers)s - 1) AS i
""",
    """
INSERT INTO buckets (program_id, customer_id, source, granted, remaining, available_at,
                     expires_at, origin, created_at)
SELECT 'stomatorg', 'c' || i, 'action', 1000000, 1000000, %(start)s - interval '400 days',
       NULL, 'GRANT', %(start)s - interval '400 days'
FROM generate_series(0, %(customers)s - 1) AS i
""",
    """
INSERT INTO ledger_entries (program_id, customer_id, kind, points, source, bucket_id,
                            reason, effective_at, recorded_at)
SELECT program_id, customer_id, 'GRANT', granted, source, bucket_id, 'seed', available_at,
       created_at
FROM buckets
""",
    """
INSERT INTO orders (program_id, order_id, customer_id, created_at)
SELECT 'stomatorg', 'o' || i, 'c' || (i %% %(customers)s), %(start)s + i * interval '1 second'
FROM generate_series(0, %(orders)s - 1) AS i
""",
    """
INSERT INTO order_lines (program_id, order_id, line_id, position, sku, category, brand, tags,
                         kind, quantity, unit_price_minor, discount_minor, promo_discount_minor)
SELECT 'stomatorg', 'o' || i, 'l' || l, l, 'sku' || ((i * 7 + l) %% 500),
       'cat' || (l %% 5), 'brand' || (l %% 7), CASE WHEN l = 19 THEN '["no_points"]' ELSE '[]' END,
       CASE WHEN l = 18 THEN 'SERVICE' ELSE 'GOODS' END, 1 + l %% 3,
       1000 + (i * 13 + l * 17) %% 50000, (l %% 4) * 100, 0
FROM generate_series(0, %(orders)s - 1) AS i, generate_series(0, 19) AS l
""",
    """
INSERT INTO redemptions (redemption_id, program_id, order_id, customer_id, state, points,
                         discount_minor, program_version, created_at, updated_at)
SELECT md5('r' || i)::uuid::text, 'stomatorg', 'o' || i, 'c' || (i %% %(customers)s),
       'APPLIED', 17, 1700, 1, %(start)s + i * interval '1 second',
       %(start)s + i * interval '1 second'
FROM generate_series(0, %(orders)s - 1, 2) AS i
""",
    """
INSERT INTO redemption_lines (redemption_id, line_id, position, quantity, points, discount_minor)
SELECT md5('r' || i)::uuid::text, 'l' || l, l, 1 + l %% 3, 1, 100
FROM generate_series(0, %(orders)s - 1, 2) AS i, generate_series(0, 16) AS l
""",
    """
INSERT INTO ledger_entries (program_id, customer_id, kind, points, source, bucket_id,
                            order_id, reason, effective_at, recorded_at)
SELECT 'stomatorg', r.customer_id, 'REDEMPTION', -17, 'action', b.bucket_id, r.order_id,
       'seed', r.created_at, r.created_at
FROM redemptions r JOIN buckets b ON b.program_id = r.program_id
                                 AND b.customer_id = r.customer_id
""",
    """
UPDATE buckets b SET remaining = b.remaining - 17 * n.count
FROM (SELECT customer_id, count(*) AS count FROM redemptions GROUP BY customer_id) n
WHERE n.customer_id = b.customer_id
""",
    """
INSERT INTO accruals (accrual_id, program_id, order_id, customer_id, points, base_minor,
                      tier_id, earn_rate_bp, program_version, delivered_at, available_at,
                      expires_at, created_at)
SELECT md5('a' || i)::uuid::text, 'stomatorg', 'o' || i, 'c' || (i %% %(customers)s), 0,
       500000, 'base', 300, 1, %(start)s + i * interval '1 second',
       %(start)s + i * interval '1 second' + interval '7 days', NULL,
       %(start)s + i * interval '1 second'
FROM generate_series(0, %(orders)s - 1, 4) AS i
""",
    "ANALYZE",
]


def seed(url: str, *, orders: int) -> None:
    engine = create_database_engine(url, pool_size=1)
    migrate(engine)
    engine.dispose()
    customers = max(1, orders // ORDERS_PER_CUSTOMER)
    params = {"start": START, "orders": orders, "customers": customers}
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in _SEED:
            connection.execute(statement, params)  # type: ignore[arg-type]


def measure(url: str, *, orders: int, draft: Path, workers: int | None) -> dict[str, Any]:
    program = load_program(SHIPPED_PROGRAMS / "stomatorg.toml")
    request = Request(
        program,
        load_program(draft),
        draft,
        Window("stomatorg", "RUB", START, START + timedelta(seconds=orders)),
        per_order=False,
        workers=workers,
    )
    engine = create_database_engine(url, pool_size=1)
    began, cpu = time.perf_counter(), _cpu_seconds()
    summary, _ = run(engine, request)
    seconds, cpu = time.perf_counter() - began, _cpu_seconds() - cpu
    assert summary.total.orders == orders, (summary.total.orders, orders)
    engine.dispose()
    return {
        "orders": orders,
        "workers": worker_count(engine, request, orders),
        "seconds": round(seconds, 2),
        "orders_per_second": round(orders / seconds),
        # CPU per order of this process and its workers: the figure that least depends on
        # the machine's load (the database's own CPU is not in it).
        "cpu_ms_per_order": round(1000 * cpu / orders, 3),
        # Peak resident memory so far (KiB on Linux) of this process, and of the largest
        # worker: windows run smallest first, so a flat column means the replay streams.
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "worker_peak_rss_mib": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        )
        or "-",  # none yet
        "load_average": round(os.getloadavg()[0], 2),
        "max_points_change": summary.total.max_points_change,
    }


def _cpu_seconds() -> float:
    """User and system CPU of this process and of its finished workers."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--orders", default="10000,50000,100000", help="window sizes, comma-separated")
    p.add_argument("--out", type=Path, default=Path("var/bench"))
    p.add_argument("--workers", type=int, help="worker processes (default: as simulate decides)")
    args = p.parse_args()
    sizes = [int(n) for n in args.orders.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    draft = args.out / "stomatorg-partner-12.toml"
    shipped = (SHIPPED_PROGRAMS / "stomatorg.toml").read_text(encoding="utf-8")
    draft.write_text(shipped.replace("redeem_cap_bp = 1000", "redeem_cap_bp = 1200"), "utf-8")
    results = []
    with fresh_postgres() as url:
        began = time.perf_counter()
        seed(url, orders=max(sizes))
        print(f"seeded {max(sizes):,} orders × 20 lines in {time.perf_counter() - began:.0f} s")
        for size in sizes:
            results.append(measure(url, orders=size, draft=draft, workers=args.workers))
            print(json.dumps(results[-1]))
    (args.out / "whatif.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(
        "| orders in window | workers | seconds | orders/s | CPU ms/order "
        "| peak RSS (MiB) | worker peak RSS (MiB) | load average |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['orders']:,} | {r['workers']} | {r['seconds']} | {r['orders_per_second']:,} "
              f"| {r['cpu_ms_per_order']} | {r['peak_rss_mib']} | {r['worker_peak_rss_mib']} "
              f"| {r['load_average']} |")  # fmt: skip


if __name__ == "__main__":
    main()
