"""The database's ceiling: an apply's statements sent by bare psycopg, no gRPC, no ORM, no pricing.

Each transaction is what the service sends for one ApplyRedemption on PostgreSQL, statement
for statement (kept in step with server/service/apply.py by hand: see APPLY_STATEMENTS),
with the values a pricing step would have produced worked out in a line of Python.
`python -m bench.bare` with a JSON spec on stdin; threads in one process, one connection each.
"""

import json
import resource
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

CLAIM = """INSERT INTO idempotency_keys (program_id, request_id, method, fingerprint, created_at)
VALUES (%s, %s, 'ApplyRedemption', %s, %s) ON CONFLICT DO NOTHING RETURNING request_id"""
LOCK = """INSERT INTO accounts (program_id, customer_id, created_at) VALUES (%s, %s, %s)
ON CONFLICT (program_id, customer_id) DO UPDATE SET version = accounts.version + 1
RETURNING accounts.debt_points"""
SNAPSHOT = """SELECT a.debt_points,
 EXISTS (SELECT 1 FROM redemptions WHERE program_id = %(p)s AND customer_id = %(c)s
         AND state = 'HELD') AS has_holds,
 EXISTS (SELECT 1 FROM redemptions WHERE program_id = %(p)s AND order_id = %(o)s) AS taken,
 b.bucket_id, b.source, b.remaining, b.available_at, b.expires_at, b.settled
FROM accounts a LEFT OUTER JOIN buckets b ON b.program_id = a.program_id
 AND b.customer_id = a.customer_id
 AND ((b.remaining > 0 AND (b.expires_at IS NULL OR b.expires_at > %(now)s)) OR b.settled IS false)
WHERE a.program_id = %(p)s AND a.customer_id = %(c)s"""
ORDER = """INSERT INTO orders (program_id, order_id, customer_id, created_at)
VALUES (%s, %s, %s, %s)"""
ORDER_LINES = """INSERT INTO order_lines (program_id, order_id, line_id, position, sku, category,
brand, tags, kind, quantity, unit_price_minor, discount_minor, promo_discount_minor, whole)
SELECT %s, %s, l, p, s, c, b, '[]', 'GOODS', q, u, d, 0, true FROM unnest(%s::text[], %s::int[],
%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[]) AS x(l, p, s, c, b,
q, u, d)"""
REDEMPTION = """INSERT INTO redemptions (redemption_id, program_id, order_id, customer_id, state,
points, discount_minor, points_reversed, payment_method, program_version, hold_expires_at,
created_at, updated_at, attempt) VALUES (%s, %s, %s, %s, 'APPLIED', %s, %s, 0, '', 1, NULL, %s,
%s, 1)"""
LINES = """INSERT INTO redemption_lines (redemption_id, line_id, position, quantity, points,
discount_minor) SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[],
%s::bigint[])"""
DEBITS = """INSERT INTO redemption_debits (redemption_id, bucket_id, points_taken)
VALUES (%s, %s, %s)"""
TAKE = "UPDATE buckets SET remaining = buckets.remaining + %s WHERE buckets.bucket_id = %s"
LEDGER = """INSERT INTO ledger_entries (program_id, customer_id, kind, points, source, bucket_id,
order_id, request_id, reason, effective_at, recorded_at)
VALUES (%s, %s, 'REDEMPTION', %s, %s, %s, %s, %s, '', %s, %s)"""
ANSWER = """UPDATE idempotency_keys SET response = %s
WHERE program_id = %s AND request_id = %s"""

# The round trips of the first apply of an order on PostgreSQL (single-tier program, no
# holds), in order, as the service sent them before the hot-path work (docs/benchmarks.md):
# kept as they were so that the service's ratio to this ceiling stays comparable across
# changes. Lines go as one INSERT over arrays each.
APPLY_STATEMENTS = (
    "begin", "claim", "lock", "snapshot", "order", "order_lines",
    "redemption", "lines", "debits", "take", "ledger", "answer", "commit",
)  # fmt: skip


@dataclass
class Spec:
    url: str
    program_id: str
    accounts: list[str]
    threads: int
    slot_offset: int
    total_slots: int
    points: int
    lines: int
    run_id: str
    start_at: float
    warmup: float
    duration: float


@dataclass
class Tally:
    latencies_us: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def apply_once(conn: psycopg.Connection, spec: Spec, customer: str, order: str) -> None:
    now = datetime.now(UTC)
    request_id = f"{order}-apply"
    p = spec.program_id
    with conn.transaction():
        conn.execute(CLAIM, (p, request_id, b"fingerprint", now)).fetchone()
        conn.execute(LOCK, (p, customer, now)).fetchone()
        found = conn.execute(SNAPSHOT, {"p": p, "c": customer, "o": order, "now": now}).fetchall()
        bucket = min((b[3:] for b in found if b[5] >= spec.points), key=lambda b: b[4])
        n = spec.lines
        conn.execute(ORDER, (p, order, customer, now))
        conn.execute(
            ORDER_LINES,
            (p, order, [f"l{i}" for i in range(n)], list(range(n)), [f"SKU-{i}" for i in range(n)],
             ["tools"] * n, ["Acme"] * n, [1] * n, [1_000] * n, [0] * n),
        )  # fmt: skip
        rid = str(uuid.uuid4())
        conn.execute(
            REDEMPTION, (rid, p, order, customer, spec.points, spec.points * 100, now, now)
        )
        share = spec.points // spec.lines
        conn.execute(
            LINES, (rid, [f"l{i}" for i in range(n)], list(range(n)), [1] * n, [share] * n,
                    [share * 100] * n),
        )  # fmt: skip
        conn.execute(DEBITS, (rid, bucket[0], spec.points))
        conn.cursor().executemany(TAKE, [(-spec.points, bucket[0])])
        conn.execute(
            LEDGER,
            (p, customer, -spec.points, bucket[1], bucket[0], order, request_id, now, now),
        )
        conn.execute(ANSWER, (b"x" * 600, p, request_id))


KEEP_AFTER_WINDOW = 1.0  # seconds each connection stays open after the window


def worker(spec: Spec, slot: int, tally: Tally, window: tuple[float, float]) -> None:
    g = spec.slot_offset + slot
    mine = spec.accounts[g :: spec.total_slots]
    with psycopg.connect(spec.url) as conn:
        conn.autocommit = True  # transactions are explicit
        time.sleep(max(0.0, spec.start_at - time.time()))
        n = 0
        while time.perf_counter() < window[1]:
            began = time.perf_counter()
            try:
                apply_once(conn, spec, mine[n % len(mine)], f"{spec.run_id}-{g}-{n}")
                done = time.perf_counter()
                if window[0] <= began and done < window[1]:
                    with tally.lock:
                        tally.latencies_us.append(int((done - began) * 1e6))
            except psycopg.Error as exc:
                with tally.lock:
                    name = type(exc).__name__
                    tally.errors[name] = tally.errors.get(name, 0) + 1
            n += 1
        # The bench samples PostgreSQL's CPU at the window's end, from the processes alive
        # then: a backend whose connection closed first would go uncounted.
        time.sleep(max(0.0, window[1] + KEEP_AFTER_WINDOW - time.perf_counter()))


def run(spec: Spec) -> dict[str, Any]:
    offset = time.perf_counter() - time.time()
    start = spec.start_at + spec.warmup + offset
    window = (start, start + spec.duration)
    tally = Tally()
    threads = [
        threading.Thread(target=worker, args=(spec, slot, tally, window))
        for slot in range(spec.threads)
    ]
    for t in threads:
        t.start()
    time.sleep(max(0.0, window[0] - time.perf_counter()))
    before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(max(0.0, window[1] - time.perf_counter()))
    after = resource.getrusage(resource.RUSAGE_SELF)
    for t in threads:
        t.join()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "latencies_us": tally.latencies_us,
        "errors": tally.errors,
        "error_sample": "",
        "applied": [],
        "cpu_seconds": cpu,
        "active_seconds": spec.duration,
    }


def main() -> None:
    spec = Spec(**json.load(sys.stdin))
    json.dump(run(spec), sys.stdout)


if __name__ == "__main__":
    main()
