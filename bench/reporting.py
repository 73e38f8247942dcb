"""The finance reports on a seeded program: GetLiability and a one-year roll-forward.

Each size gets its own PostgreSQL database: N accounts × 20 buckets spread over the
last 400 days (sources loyalty, promo and the never-expiring action; 90- or 365-day
expiries), a quarter of them spent whole and a quarter half spent (a REDEMPTION entry
each), and the expired ones half written down by the expiry job (an EXPIRY entry)
and half still due. Loaded set-wise on the server (`INSERT … SELECT generate_series`,
no row crosses the wire), indexes and keys dropped for the load and rebuilt after.

The use cases run in this process against the database (no gRPC: the time is the
report's), each timed `repeat` times; then every statement they sent is explained
with EXPLAIN (ANALYZE, BUFFERS).

python -m bench.reporting --sizes 10000,100000      # or `python -m bench --reporting …`
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

from bench.processes import fresh_postgres, migrate
from bench.seed import _without_checks, rebuild_totals
from pricing.program import load_programs
from server.service.deps import Deps
from server.service.reporting import get_liability, get_roll_forward
from server.store.db import Database, create_database_engine
from server.store.reporting import PLANNER_SETTINGS

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
PROGRAM = "stomatorg"
PER_ACCOUNT = 20
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # the instant the data is laid out around

# One row per bucket b of account i; `now` is a parameter so the data is the same every run.
_BUCKETS = """
INSERT INTO buckets (program_id, customer_id, source, granted, remaining, available_at,
                     expires_at, origin, created_at, expired_points)
SELECT %(program)s, 'r-' || i, src, g, CASE WHEN gone THEN 0 ELSE g - spent END, avail,
       exp, 'GRANT', avail, CASE WHEN gone THEN g - spent ELSE 0 END
FROM (
  SELECT i, b, g, spent, avail, exp, src,
         exp IS NOT NULL AND exp <= %(now)s AND (i + b) %% 2 = 0 AS gone
  FROM (
    SELECT i, b, 1000 + (i * 7 + b * 13) %% 4000 AS g,
           CASE b %% 4 WHEN 0 THEN 1000 + (i * 7 + b * 13) %% 4000
                       WHEN 1 THEN (1000 + (i * 7 + b * 13) %% 4000) / 2 ELSE 0 END AS spent,
           %(now)s - (400 - 19 * b) * interval '1 day' + (i %% 86400) * interval '1 second'
             AS avail,
           CASE WHEN b %% 7 = 6 THEN NULL
                ELSE %(now)s - (400 - 19 * b) * interval '1 day'
                     + (i %% 86400) * interval '1 second'
                     + CASE WHEN b %% 3 = 0 THEN 90 ELSE 365 END * interval '1 day' END AS exp,
           CASE WHEN b %% 7 = 6 THEN 'action' WHEN b %% 2 = 0 THEN 'loyalty' ELSE 'promo' END
             AS src
    FROM generate_series(%(lo)s::int, %(hi)s::int) AS i, generate_series(0, 19) AS b
  ) AS planned
) AS decided
"""
_ENTRIES = """
INSERT INTO ledger_entries (program_id, customer_id, kind, points, source, bucket_id,
                            reason, effective_at, recorded_at)
SELECT program_id, customer_id, 'GRANT', granted, source, bucket_id, 'seed', available_at,
       available_at FROM buckets WHERE bucket_id > %(after)s
UNION ALL
SELECT program_id, customer_id, 'REDEMPTION', -(granted - remaining - expired_points), source,
       bucket_id, 'seed', available_at + interval '10 days', available_at + interval '10 days'
FROM buckets WHERE bucket_id > %(after)s AND granted - remaining - expired_points > 0
UNION ALL
SELECT program_id, customer_id, 'EXPIRY', -expired_points, source, bucket_id, 'seed',
       expires_at, expires_at FROM buckets WHERE bucket_id > %(after)s AND expired_points > 0
"""
_ACCOUNTS = """
INSERT INTO accounts (program_id, customer_id, created_at)
SELECT %(program)s, 'r-' || i, %(now)s FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
"""


def seed(url: str, *, count: int, now: datetime, batch: int = 100_000) -> float:
    """Load the program; returns the seconds the reports' running totals took to rebuild."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        # No trigger per row: the reports' running totals are rebuilt once at the end.
        conn.execute("SET session_replication_role = replica")
        ddl = _without_checks(conn)
        after = conn.execute("SELECT coalesce(max(bucket_id), 0) FROM buckets").fetchone()
        for lo in range(0, count, batch):
            args = {"program": PROGRAM, "now": now, "lo": lo, "hi": min(count, lo + batch) - 1}
            conn.execute(_ACCOUNTS, args)
            conn.execute(_BUCKETS, args)
            conn.commit()
        # One pass over the new buckets (per batch, each pass read every bucket loaded so far).
        conn.execute(_ENTRIES, {"after": after[0] if after else 0})
        conn.commit()
        for statement in ddl:
            conn.execute(statement)
        began = time.monotonic()
        rebuild_totals(conn)
        conn.commit()
        rebuilt = round(time.monotonic() - began, 1)
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return rebuilt


def _timed(work: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        times.append(round(time.perf_counter() - began, 3))
    return times


def _explain(url: str, statements: list[tuple[str, Any]]) -> list[str]:
    plans = []
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for setting in PLANNER_SETTINGS:  # as the reports run
            conn.execute(f"SET {setting}")
        for statement, params in statements:
            rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params).fetchall()
            plans.append("\n".join(row[0] for row in rows))
    return plans


def measure(url: str, *, now: datetime, repeat: int = 3, roll: bool = True) -> dict[str, Any]:
    """Time both reports at `now` (the statements of the first run of each are kept),
    then explain every statement each of them sent."""
    engine = create_database_engine(url, pool_size=2)
    deps = Deps(Database(engine), load_programs(PROGRAMS))
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, params))

    window = {"start": now - timedelta(days=365), "end": now}
    event.listen(engine, "before_cursor_execute", record)
    began = time.perf_counter()
    report = get_liability(deps, program_id=PROGRAM, now=now)
    first_liability = round(time.perf_counter() - began, 3)
    statements, seen[:] = list(seen), []
    began = time.perf_counter()
    rolled = get_roll_forward(deps, program_id=PROGRAM, now=now, **window) if roll else None
    first_roll = round(time.perf_counter() - began, 3)
    statements += seen
    event.remove(engine, "before_cursor_execute", record)
    liability = _timed(lambda: get_liability(deps, program_id=PROGRAM, now=now), repeat - 1)
    rolls = _timed(lambda: get_roll_forward(deps, program_id=PROGRAM, now=now, **window),
                   repeat - 1 if roll else 0)  # fmt: skip
    engine.dispose()
    queries = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
    return {
        "liability_s": [first_liability, *liability],
        "roll_forward_s": [first_roll, *rolls] if rolled else [],
        "spendable_points": report.figures.spendable,
        "customers": report.figures.customers,
        "closing_points": rolled.figures.closing if rolled else None,
        "plans": _explain(url, queries),
    }


def run(sizes: list[int], *, admin_url: str, out: Path, keep: bool = False) -> list[dict[str, Any]]:
    now = NOW
    results = []
    for n in sizes:
        with fresh_postgres(admin_url, keep=keep) as url:
            migrate(url, log_path=out / "servers.log")
            began = time.monotonic()
            rebuilt = seed(url, count=n, now=now)
            loaded = round(time.monotonic() - began)
            print(f"reporting: {n} accounts loaded in {loaded} s (totals rebuilt in {rebuilt} s) "
                  f"into {url}", flush=True)  # fmt: skip
            result = {"accounts": n, "buckets": n * PER_ACCOUNT, "load_s": loaded,
                      "totals_s": rebuilt, "load_average": os.getloadavg(),
                      **measure(url, now=now)}  # fmt: skip
            print(f"reporting: {n}: GetLiability {result['liability_s']} s, roll-forward "
                  f"{result['roll_forward_s']} s", flush=True)  # fmt: skip
            results.append(result)
            (out / "reporting.json").write_text(json.dumps(results, indent=1))
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| accounts | buckets | GetLiability s (each run) | roll-forward, 1 year, s (each run) "
        "| load s (totals rebuilt s) | load average (1, 5, 15 min) |",
        "|---:|---:|---|---|---:|---|",
    ]
    for r in results:
        load = ", ".join(f"{x:.1f}" for x in r.get("load_average", ()))
        lines.append(
            f"| {r['accounts']:,} | {r['buckets']:,} | {', '.join(map(str, r['liability_s']))} "
            f"| {', '.join(map(str, r['roll_forward_s']))} | {r['load_s']} "
            f"({r.get('totals_s', '–')}) | {load} |"
        )
    for r in results:
        lines += ["", f"Plans at {r['accounts']:,} accounts:", ""]
        for plan in r["plans"]:
            lines += ["```", plan, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reporting", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("LOYALTY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("var/bench"))
    p.add_argument("--keep", action="store_true", help="keep the databases (to --measure again)")
    p.add_argument("--measure", metavar="URL", help="measure a kept database again, no load")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each report")
    p.add_argument("--liability-only", action="store_true", help="--measure GetLiability only")
    p.add_argument(
        "--minutes-after",
        type=int,
        default=0,
        help="--measure this many minutes after the instant the data is laid out around "
        "(it is on the hour: no hour of expiries is split by a band's edge)",
    )
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.measure:
        at = NOW + timedelta(minutes=args.minutes_after)
        again = measure(args.measure, now=at, repeat=args.repeat, roll=not args.liability_only)
        row = {"accounts": again["customers"], "buckets": 0, "load_s": 0,
               "load_average": os.getloadavg(), **again}  # fmt: skip
        (args.out / f"reporting-{row['accounts']}.json").write_text(json.dumps(row, indent=1))
        print(markdown([row]))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = run(sizes, admin_url=args.postgres_url, out=args.out, keep=args.keep)
    text = markdown(results)
    (args.out / "reporting.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
