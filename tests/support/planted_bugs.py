"""Does the stateful model of the ledger still catch the bugs it is there to catch?

    .venv/bin/python -m tests.support.planted_bugs [NAME ...]

For each planted bug (all, or the ones named): copy this checkout's working tree to a
scratch directory, replace one exact piece of the code under test there, and run
`tests/integration/test_ledger_model.py::test_balances_buckets_and_ledger_follow_the_model`
on that copy (PostgreSQL, as always) with LEDGER_MODEL_PLANTED=1: up to 40 examples, the
same ones on every run of the same tree (derandomized), stopping at the first failure
instead of shrinking it. A bug is *caught* when the model fails (a pytest-timeout is not a
catch). A control run with nothing planted must pass first. Prints one line per bug: the
verdict, the seconds, the example the model failed in (each run's pytest output goes to
$TMPDIR/planted-bugs/); exits 1 if any was missed, or if a piece to replace is no longer
in the code (the bug must then be planted anew where the rule now lives).

The first twelve are the ones the model was shown to catch when it was written (commit
de6444e); the last four are the rules issue 12 added to the model.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOGS = Path(tempfile.gettempdir()) / "planted-bugs"  # each run's pytest output
TEST = "tests/integration/test_ledger_model.py::test_balances_buckets_and_ledger_follow_the_model"
SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "__pycache__",
    ".hypothesis",
    ".pytest_cache",
    "var",
    "*.egg-info",
)


@dataclass(frozen=True)
class Bug:
    name: str
    path: str
    correct: str
    planted: str


BUGS = [
    Bug(
        "spend order reversed",
        "pricing/buckets.py",
        "return sorted(live, key=first_expiring_first)",
        "return sorted(live, key=first_expiring_first, reverse=True)",
    ),
    Bug(
        "tie order reversed",
        "pricing/buckets.py",
        "return (bucket.expires_at is None, bucket.expires_at, bucket.seq)",
        "return (bucket.expires_at is None, bucket.expires_at, -bucket.seq)",
    ),
    Bug(
        "expiry boundary inclusive",
        "pricing/buckets.py",
        "(self.expires_at is None or now < self.expires_at)",
        "(self.expires_at is None or now <= self.expires_at)",
    ),
    Bug(
        "debt never paid at maturity",
        "pricing/buckets.py",
        "        pay = min(bucket.remaining, debt)\n",
        "        pay = 0\n",
    ),
    Bug(
        "debt never paid by grants",
        "pricing/buckets.py",
        "    to_debt = min(credit, debt)\n",
        "    to_debt = 0\n",
    ),
    Bug(
        "restore order reversed",
        "pricing/buckets.py",
        "for record in sorted(records, key=first_expiring_first, reverse=True):",
        "for record in sorted(records, key=first_expiring_first):",
    ),
    Bug(
        "own bucket skipped by clawback",
        "pricing/buckets.py",
        "        if bucket.bucket_id == own_bucket_id:\n",
        "        if False:\n",
    ),
    Bug(
        "ceil instead of floor on returns",
        "pricing/money.py",
        "    return total * done // of\n",
        "    return -(-total * done // of)\n",
    ),
    Bug(
        "accruals earning on points spent",
        "pricing/accrual.py",
        "line.net_minor - spent_by_line.get(line.line_id, 0) * point_value_minor",
        "line.net_minor - 0 * point_value_minor",
    ),
    Bug(
        "returns into expired buckets made spendable",
        "pricing/order.py",
        "if d.expires_at is not None and d.expires_at <= now",
        "if False",
    ),
    Bug(
        "EXPIRY effective at the job's clock",
        "server/service/expire.py",
        'LedgerEntry("EXPIRY", -e.points, e.source, e.expires_at, e.bucket_id)',
        'LedgerEntry("EXPIRY", -e.points, e.source, now, e.bucket_id)',
    ),
    Bug(
        "CLAWBACK of pending points effective now",
        "pricing/order.py",
        "effective_at=max(buckets[d.bucket_id].available_at, now),",
        "effective_at=now,",
    ),
    # ---- issue 12 ----
    Bug(
        "another customer may name the order",
        "pricing/order.py",
        "        if customer_id != self.customer_id:\n",
        "        if False:\n",
    ),
    Bug(
        "no retry after a released hold",
        "pricing/order.py",
        "        if self.has_live_redemption:\n",
        "        if self.attempts:\n",
    ),
    Bug(
        "held points not counted as spent by the accrual",
        "pricing/order.py",
        "if live is None or live.state not in _SPENT_STATES:",
        "if live is None or live.state not in _SPENT_STATES or live.state.value == 'HELD':",
    ),
    Bug(
        "a part accrual deducts the points of undelivered lines too",
        "pricing/order.py",
        "delivered = {line.line_id: line.quantity for line in cart.lines}",
        "delivered = {line.line_id: line.quantity for line in live.lines}",
    ),
]


def plant(bug: Bug, scratch: Path) -> None:
    shutil.copytree(ROOT, scratch, ignore=SKIP)
    target = scratch / bug.path
    text = target.read_text()
    if not bug.correct:
        return  # the control run
    if text.count(bug.correct) != 1:
        raise LookupError(f"{bug.path} no longer has exactly one {bug.correct!r}")
    target.write_text(text.replace(bug.correct, bug.planted))


def run(bug: Bug) -> tuple[str, float, str]:
    """(verdict, seconds, the example the model failed in: "" if it did not)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="planted-") as tmp:
        scratch = Path(tmp) / "tree"
        try:
            plant(bug, scratch)
        except LookupError as exc:
            return f"NOT PLANTED ({exc})", 0.0, ""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
        env |= {"PYTHONPATH": str(scratch), "LEDGER_MODEL_PLANTED": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", TEST],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    took = time.monotonic() - started
    LOGS.mkdir(exist_ok=True)
    (LOGS / f"{bug.name.replace(' ', '-')}.log").write_text(done.stdout + done.stderr)
    failed_in = re.search(r"ledger model: failed in example (\d+)", done.stdout)
    example = f"example {failed_in[1]}" if failed_in else ""
    if done.returncode == 0:
        return "MISSED", took, example
    if "+ Timeout +" in done.stdout + done.stderr:  # pytest-timeout stopped it: slow, not caught
        return "TIMEOUT", took, example
    if done.returncode == 1:
        return "caught", took, example
    return f"ERROR (pytest exit {done.returncode}): {done.stdout[-2000:]}", took, example


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="bugs to plant (default: all)")
    parser.add_argument(
        "--skip-control", action="store_true", help="the control already passed on this tree"
    )
    args = parser.parse_args()
    chosen = [b for b in BUGS if not args.names or b.name in args.names]
    if args.skip_control:
        return _plant_all(chosen)
    control, took, _ = run(Bug("nothing planted (control: must pass)", "pricing/money.py", "", ""))
    verdict = "passes" if control == "MISSED" else control
    print(f"{verdict:8} {took:6.0f} s  {'':10}  nothing planted")
    if control != "MISSED":
        print("the model fails with no bug planted: fix that first")
        return 1
    return _plant_all(chosen)


def _plant_all(chosen: list[Bug]) -> int:
    failed = 0
    for bug in chosen:
        verdict, took, example = run(bug)
        failed += verdict != "caught"
        print(f"{verdict:8} {took:6.0f} s  {example:10}  {bug.name}", flush=True)
    print(f"{len(chosen) - failed} of {len(chosen)} planted bugs caught")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
