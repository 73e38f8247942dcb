"""What the reports' running totals (migration 0007) add to PostgreSQL's CPU per bucket write.

The server process's own CPU time (/proc/PID/stat, user + system: the figure least moved by
other load on the machine) over N single-row writes, each its own transaction, with the
triggers on and then off, on the same kind of rows:

* a spend that leaves points in the bucket (one change row);
* a spend that empties the account's latest bucket (one change row, the account's latest
  live expiry read again from its buckets);
* a grant: a new bucket (one change row, the account's latest live expiry raised).

python -m bench.trigger_cost URL [--writes N]     # URL: a migrated, disposable database
"""

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TICKS = os.sysconf("SC_CLK_TCK")
BLOCK = 500


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _setup(conn: psycopg.Connection, writes: int) -> None:
    conn.execute("TRUNCATE accounts, buckets CASCADE")
    conn.execute(
        "INSERT INTO accounts (program_id, customer_id, created_at) "
        "SELECT 'p', 'c-' || i, %s FROM generate_series(0, %s) AS i",
        (NOW, 4 * writes),
    )
    # Each account 5 buckets, the latest expiring last (its id is the account's × 5 + 4).
    conn.execute(
        "INSERT INTO buckets (program_id, customer_id, source, granted, remaining, "
        "available_at, expires_at, origin, created_at) "
        "SELECT 'p', 'c-' || i, 'loyalty', 1000, 1000, %s, %s + (b + 1) * interval '1 day', "
        "'GRANT', %s FROM generate_series(0, %s) AS i, generate_series(0, 4) AS b "
        "ORDER BY i, b",
        (NOW, NOW, NOW, 4 * writes),
    )
    conn.execute("SELECT reporting_rebuild_totals()")
    conn.commit()


def _per_write(
    conn: psycopg.Connection, pid: int, write: Callable[[int], None], rows: range
) -> float:
    began = _cpu(pid)
    for i in rows:
        write(i)
        conn.commit()
    return (_cpu(pid) - began) / len(rows) * 1e6  # µs


def _triggers(conn: psycopg.Connection, how: str) -> None:
    conn.execute(f"ALTER TABLE buckets {how} TRIGGER USER")
    conn.commit()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.trigger_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("url")
    p.add_argument("--writes", type=int, default=3000)
    args = p.parse_args(argv)
    n = args.writes // BLOCK * BLOCK
    with psycopg.connect(args.url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        _setup(conn, n)
        first = conn.execute("SELECT min(bucket_id) FROM buckets").fetchone()[0]  # type: ignore[index]

        def spend(i: int) -> None:
            conn.execute("UPDATE buckets SET remaining = remaining - 1 WHERE bucket_id = %s",
                         (first + 5 * i,))  # fmt: skip

        def empty_latest(i: int) -> None:
            conn.execute("UPDATE buckets SET remaining = 0 WHERE bucket_id = %s",
                         (first + 5 * i + 4,))  # fmt: skip

        def grant(i: int) -> None:
            conn.execute(
                "INSERT INTO buckets (program_id, customer_id, source, granted, remaining, "
                "available_at, expires_at, origin, created_at) VALUES ('p', %s, 'loyalty', 10, "
                "10, %s, %s + interval '400 days', 'GRANT', %s)",
                (f"c-{i}", NOW, NOW, NOW),
            )

        print("| write | PG CPU µs, triggers on | off | added |")
        print("|---|---:|---:|---:|")
        for name, write in (("spend, points left", spend), ("spend, latest emptied", empty_latest),
                            ("grant (new bucket)", grant)):  # fmt: skip
            on = off = 0.0
            for lo in range(0, 2 * n, 2 * BLOCK):  # on and off in turns: drift falls on both
                on += _per_write(conn, pid, write, range(lo, lo + BLOCK)) * BLOCK
                _triggers(conn, "DISABLE")
                off += _per_write(conn, pid, write, range(lo + BLOCK, lo + 2 * BLOCK)) * BLOCK
                _triggers(conn, "ENABLE")
            on, off = on / n, off / n
            print(f"| {name} | {on:.0f} | {off:.0f} | {on - off:.0f} |", flush=True)
        conn.execute("TRUNCATE accounts, buckets CASCADE")
        conn.commit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
