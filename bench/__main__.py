"""`python -m bench`: the service under load next to its baselines, in one run.

python -m bench                      # everything (about 15 minutes, with a million accounts)
python -m bench --quick              # a smaller run (within two minutes)
python -m bench --capacity           # what one PostgreSQL core carries (docs/scale.md)
python -m bench --backends postgres --workloads apply --concurrency 16 --duration 10
"""

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import psutil

from bench import reporting
from bench.processes import add_postgres_url
from bench.report import markdown
from bench.suite import Options, Suite

# quote-plain: the same quotes from a second server started with --no-explanations, each
# cell right after its quote cell (docs/rules.md §10's texts must cost ≤ 10 % of a quote).
WORKLOADS = ["quote", "quote-plain", "apply", "apply-hot", "reverse", "mix"]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _names(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def parse(argv: list[str]) -> tuple[Options, bool]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--quick", action="store_true", help="a small run: c=1,16, 1 s cells, scale 1k/5k"
    )
    p.add_argument(
        "--capacity",
        action="store_true",
        help="quotes and applies on PostgreSQL at c16, 10 s cells: CPU per request of the "
        "database and of the service, for docs/scale.md",
    )
    p.add_argument("--backends", type=_names, default=["sqlite", "postgres"])
    p.add_argument("--workloads", type=_names, default=WORKLOADS, help=",".join(WORKLOADS))
    p.add_argument("--concurrency", type=_ints, default=[1, 8, 16, 64])
    p.add_argument("--workers", type=_ints, default=[1, 2], help="server processes (PostgreSQL)")
    p.add_argument("--scale", type=_ints, default=[1_000, 1_000_000],
                   help="account counts of the scale runs (PostgreSQL); empty: none")  # fmt: skip
    p.add_argument("--scale-concurrency", type=_ints, default=[1, 16])
    p.add_argument("--reporting", type=_ints, default=[10_000, 100_000, 1_000_000],
                   help="account counts (× 20 buckets) for GetLiability and a one-year "
                   "roll-forward (PostgreSQL, bench/reporting.py); empty: none")  # fmt: skip
    p.add_argument("--accounts", type=int, default=1_000)
    p.add_argument("--clients", type=int, default=2, help="generator processes at most")
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per cell")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--pool-size", type=int, default=8, help="the server's --db-pool-size")
    p.add_argument("--program", default="denco")
    add_postgres_url(p)
    p.add_argument("--out", type=Path, default=Path("var/bench"))
    p.add_argument("--profile", action="store_true", help="py-spy each cell into OUT/profiles/")
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL databases")
    args = p.parse_args(argv)
    if args.quick:
        args.concurrency, args.workers = [1, 16], [1]
        args.scale, args.scale_concurrency = [1_000, 5_000], [1]
        args.reporting = [1_000]
        args.duration, args.warmup = 1.0, 0.3
    if args.capacity:
        args.backends, args.workloads, args.concurrency = ["postgres"], ["quote", "apply"], [16]
        args.workers, args.scale, args.duration = [1], [], 10.0
    options = Options(
        backends=args.backends, workloads=args.workloads, concurrency=args.concurrency,
        workers=args.workers, scale=args.scale, scale_concurrency=args.scale_concurrency,
        accounts=args.accounts, clients=args.clients, duration=args.duration,
        warmup=args.warmup, pool_size=args.pool_size, program=args.program,
        postgres_url=args.postgres_url, out=args.out, keep=args.keep, profile=args.profile,
        reporting=args.reporting,
    )  # fmt: skip
    return options, args.quick


def main(argv: list[str]) -> int:
    options, _ = parse(argv)
    suite = Suite(options)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    began = time.monotonic()
    suite.run()
    meta = {
        "started": started,
        "seconds": round(time.monotonic() - began),
        "command": "python -m bench " + shlex.join(argv),
        "machine": f"{psutil.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}",
        "program": options.program,
        "duration": options.duration,
        "warmup": options.warmup,
        "clients": options.clients,
    }
    path = suite.save(meta)
    report = options.out / "results.md"
    finance = reporting.markdown(suite.reporting) if suite.reporting else ""
    data = {"meta": meta, "cells": [c.row() for c in suite.cells], "explain": suite.explains,
            "texts": suite.texts_us}  # fmt: skip
    report.write_text(markdown(data) + finance)
    print(report.read_text())
    print(f"JSON: {path}\nMarkdown: {report}\n{meta['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
