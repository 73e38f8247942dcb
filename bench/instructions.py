"""Instructions per call of the service and of the echo server: `python -m bench.instructions`.

CPU seconds per call move with whatever else this shared machine runs: the same bench cell
has measured 1.5 times apart within minutes (docs/benchmarks.md). Instructions executed do
not: the same code, requests and calls count the same to within about 0.5 % (the echo's
smaller call to within 4 %), whatever the load. A change to the hot path is measured here
before and after, with the bench's cells for the rest: kernel time (system calls, thread
switches) is not counted, so a change that trades instructions for round trips shows here
only what it costs in the process.

Each server runs under valgrind's callgrind (about 50 times slower: start-up takes a
minute): the service with one process on a fresh PostgreSQL database seeded like the
bench's (accounts of 20 buckets, 20-line carts), the echo server beside it. For each
workload the calls are sent one at a time: `--warmup` of them, then the counters are
zeroed, `--calls` more, and the counters dumped. The figure is every thread's
instructions (gRPC's, the event loop's, the worker threads') over those calls, per call.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from bench import seed
from bench.payloads import APPLY, QUOTE, REVERSE, Templates
from bench.processes import ROOT, Server, add_postgres_url, fresh_postgres, migrate
from pricing.program import load_programs

WORKLOADS = {"quote": QUOTE, "apply": APPLY, "reverse": REVERSE}


@dataclass(frozen=True)
class Count:
    target: str  # "echo" or "service"
    workload: str
    calls: int
    instructions: int  # over the calls, every thread

    @property
    def per_call(self) -> float:
        return self.instructions / self.calls


def callgrind(out: Path) -> tuple[str, ...]:
    """The command a server runs under; its counts are dumped to `out`.PID.N."""
    return ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", "--dump-line=no")


def dumped_instructions(path: Path) -> int:
    """The instructions a callgrind dump counted (its `summary:` line, else `totals:`)."""
    totals = None
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
        if line.startswith("totals:"):
            totals = int(line.split()[1])
    if totals is None:
        raise ValueError(f"{path}: no summary or totals line")
    return totals


def _control(option: str, pid: int) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def measure(
    server: Server,
    out: Path,
    *,
    target: str,
    workload: str,
    bodies: Sequence[bytes],
    warmup: int,
) -> Count:
    """`bodies[:warmup]` sent, counters zeroed, the rest sent one at a time, counted."""
    with grpc.insecure_channel(server.address) as channel:
        call: Callable[..., bytes] = channel.unary_unary(WORKLOADS[workload])
        for body in bodies[:warmup]:
            call(body, timeout=120)
        _control("--zero", server.pid)
        for body in bodies[warmup:]:
            call(body, timeout=120)
    before = set(out.parent.glob(out.name + ".*"))
    _control("--dump", server.pid)
    deadline = time.monotonic() + 60
    while not (new := set(out.parent.glob(out.name + ".*")) - before):
        if time.monotonic() > deadline:
            raise TimeoutError(f"callgrind wrote no dump of {target} {workload}")
        time.sleep(0.2)
    time.sleep(0.5)  # the dump is written at once, but let it be closed
    (dump,) = new
    calls = len(bodies) - warmup
    return Count(target, workload, calls, dumped_instructions(dump))


def run(args: argparse.Namespace) -> list[Count]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("callgrind.*"):
        old.unlink()
    n = args.warmup + args.calls
    counts = []
    echo_out = out / "callgrind.echo"
    echo = Server.echo(log_path=out / "echo.log", under=callgrind(echo_out)).start()
    try:
        plain = Templates.build(program_id=args.program, points=1)
        bodies = [plain.quote_for(f"echo-{i}") for i in range(n)]
        counts.append(
            measure(echo, echo_out, target="echo", workload="quote", bodies=bodies,
                    warmup=args.warmup)
        )  # fmt: skip
    finally:
        echo.stop()
    with fresh_postgres(args.postgres_url) as url:
        migrate(url, log_path=out / "service.log")
        sources = sorted(load_programs(ROOT / "programs")[args.program].sources)
        seed.seed(url, program_id=args.program, sources=sources, prefix="i-", count=n, history=True)
        accounts = seed.customer_ids("i-", n)
        service_out = out / "callgrind.service"
        service = Server.loyalty(
            url, workers=1, pool_size=8, log_path=out / "service.log",
            under=callgrind(service_out),
        ).start()  # fmt: skip
        try:
            for workload in args.workloads.split(","):
                bodies = _bodies(service, workload, args.program, accounts)
                counts.append(
                    measure(service, service_out, target="service", workload=workload,
                            bodies=bodies, warmup=args.warmup)
                )  # fmt: skip
        finally:
            service.stop()
    return counts


def _bodies(server: Server, workload: str, program: str, accounts: list[str]) -> list[bytes]:
    if workload == "quote":
        plain = Templates.build(program_id=program, points=1)
        return [plain.quote_for(a) for a in accounts]
    points = server.points_to_apply(program, accounts[0])
    templates = Templates.build(program_id=program, points=points)
    if workload == "apply":
        return [templates.apply_for(customer_id=a, order_id=f"o-{a}") for a in accounts]
    # a return of one unit of each order the apply workload placed
    return [templates.reverse_for(f"o-{a}") for a in accounts]


def table(counts: Sequence[Count]) -> str:
    echo = next((c.per_call for c in counts if c.target == "echo"), None)
    lines = [
        "| target | workload | calls | instructions per call | × echo |",
        "|---|---|---:|---:|---:|",
    ]
    for c in counts:
        ratio = f"{c.per_call / echo:.2f}" if echo else "–"
        lines.append(
            f"| {c.target} | {c.workload} | {c.calls} | {c.per_call / 1e6:.3f} M | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--calls", type=int, default=30, help="calls counted per workload")
    p.add_argument("--warmup", type=int, default=10, help="calls sent first, not counted")
    p.add_argument("--workloads", default="quote,apply,reverse",
                   help="of quote,apply,reverse (reverse returns what apply placed)")  # fmt: skip
    p.add_argument("--program", default="denco")
    add_postgres_url(p)
    p.add_argument("--out", type=Path, default=Path("var/bench/instructions"))
    args = p.parse_args(argv)
    names = args.workloads.split(",")
    if unknown := sorted(set(names) - set(WORKLOADS)):
        p.error(f"unknown workloads {unknown}: of {','.join(WORKLOADS)}")
    if "reverse" in names and "apply" not in names[: names.index("reverse")]:
        p.error("reverse returns the orders apply placed: list apply before it")
    missing = [tool for tool in ("valgrind", "callgrind_control") if not shutil.which(tool)]
    if missing:
        print(f"needs {' and '.join(missing)} (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    counts = run(args)
    report = table(counts)
    print(report)
    (args.out / "instructions.md").write_text(report + "\n")
    (args.out / "instructions.json").write_text(
        json.dumps([{**asdict(c), "per_call": c.per_call} for c in counts], indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
