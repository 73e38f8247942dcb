"""One measured cell: a workload at a concurrency against one target, and what it cost."""

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.processes import ROOT, cpu_delta, cpu_seconds, postgres_cpu

START_DELAY = 1.0  # seconds for the generator processes to import gRPC and connect


@dataclass
class Cell:
    """The figures of one cell; JSON as is, one row of the Markdown table."""

    target: str  # sqlite, postgres, echo, psycopg, or postgres-1k / postgres-1M (scale)
    workers: int
    workload: str
    concurrency: int
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: dict[str, int]
    server_cpu_ms: float  # per request: the server process(es)
    db_cpu_ms: float  # per request: PostgreSQL's processes working for the bench database
    db_shared_cpu_ms: float  # per request: PostgreSQL's shared background (WAL writer ...)
    gen_cpu_ms: float  # per request: the load generator processes
    gen_cores: float  # the generator's CPU over the window, in cores
    error_sample: str = ""
    beside: str = ""  # a baseline cell: the cell it was measured right before, as its ceiling
    applied: list[str] = field(default_factory=list, repr=False)

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("applied")
        return out


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index] / 1000


def measure(
    *,
    target: str,
    workers: int,
    workload: str,
    concurrency: int,
    specs: list[dict[str, Any]],
    module: str,
    server_pids: list[int],
    warmup: float,
    duration: float,
    database: str | None = None,
) -> Cell:
    """Start one generator process per spec, sample CPU over the window, merge what they saw."""
    start_at = time.time() + START_DELAY
    procs = []
    for spec in specs:
        spec = {**spec, "start_at": start_at, "warmup": warmup, "duration": duration}
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        procs.append(proc)
    time.sleep(max(0.0, start_at + warmup - time.time()))
    server0, db0 = cpu_seconds(server_pids), postgres_cpu(database) if database else {}
    shared0 = postgres_cpu(None) if database else {}
    time.sleep(max(0.0, start_at + warmup + duration - time.time()))
    server1, db1 = cpu_seconds(server_pids), postgres_cpu(database) if database else {}
    shared1 = postgres_cpu(None) if database else {}
    results = []
    for proc in procs:
        assert proc.stdout is not None
        out = proc.stdout.read()
        if proc.wait() != 0:
            raise RuntimeError(f"{module} failed for {target} {workload} c={concurrency}")
        results.append(json.loads(out))
    latencies = sorted(v for r in results for v in r["latencies_us"])
    errors: dict[str, int] = {}
    for r in results:
        for code, n in r["errors"].items():
            errors[code] = errors.get(code, 0) + n
    active = max(r["active_seconds"] for r in results)
    count = len(latencies)
    per = max(count, 1)
    gen_cpu = sum(r["cpu_seconds"] for r in results)
    return Cell(
        target=target,
        workers=workers,
        workload=workload,
        concurrency=concurrency,
        requests=count,
        rps=round(count / active, 1),
        p50_ms=percentile(latencies, 0.50),
        p90_ms=percentile(latencies, 0.90),
        p99_ms=percentile(latencies, 0.99),
        errors=errors,
        server_cpu_ms=round((server1 - server0) * 1000 / per, 3),
        db_cpu_ms=round(cpu_delta(db0, db1) * 1000 / per, 3),
        db_shared_cpu_ms=round(cpu_delta(shared0, shared1) * 1000 / per, 3),
        gen_cpu_ms=round(gen_cpu * 1000 / per, 3),
        gen_cores=round(gen_cpu / duration, 2),
        error_sample=next((r["error_sample"] for r in results if r["error_sample"]), ""),
        applied=[o for r in results for o in r["applied"]],
    )


def split(concurrency: int, processes: int) -> list[tuple[int, int]]:
    """(slots, offset) per generator process: `concurrency` calls in flight over them all."""
    n = max(1, min(concurrency, processes))
    sizes = [concurrency // n + (1 if i < concurrency % n else 0) for i in range(n)]
    offsets = [sum(sizes[:i]) for i in range(n)]
    return list(zip(sizes, offsets, strict=True))
