"""Mutation check of pricing/: does the pricing unit suite notice a flipped rule?

Each mutant changes one thing in one module of pricing/ (the kinds of slip that pass review):

* a comparison at its boundary: `<` ↔ `<=`, `>` ↔ `>=`, `==` ↔ `!=`;
* rounding: `a // b` (floor) becomes `-(-a // b)` (ceiling);
* a clamp: `min(…)` ↔ `max(…)`.

Every mutant runs tests/unit/pricing in a copy of the repository (`pytest -x`: the module's
own test file first, then the rest with the Hypothesis properties last), with a timeout; a
failing run or a timeout kills it. The report lists the survivors; the exit status is 1 when fewer
than --fail-under per cent are killed. It is a measurement, not part of `make test`:

    nice -n 19 .venv/bin/python tools/mutation_check.py --jobs 2    # docs/testing.md
    nice -n 19 .venv/bin/python tools/mutation_check.py pricing/buckets.py:24  # one line
"""

import argparse
import ast
import copy
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path("tests/unit/pricing")
SLOW = "test_properties.py"  # Hypothesis: most of the suite's time, so it runs last
# What the pricing unit tests need, and nothing more (the suite's root conftest would import
# gRPC and psycopg for nothing, on every run).
COPIED = (
    "pricing", "programs", "pyproject.toml", "tests/__init__.py", "tests/unit/__init__.py",
    str(TESTS),
)  # fmt: skip

FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


@dataclass(frozen=True)
class Mutant:
    module: Path  # relative to the repository
    index: int  # the index-th mutation point of the module, in ast.walk order
    line: int
    change: str


@dataclass(frozen=True)
class Verdict:
    mutant: Mutant
    outcome: str  # killed, timeout (killed too), survived, error
    seconds: float


def _points(tree: ast.AST) -> Iterator[tuple[ast.AST, int, str]]:
    """(node, which, description) for every mutation point, in a stable order."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for which, op in enumerate(node.ops):
                if type(op) in FLIPPED:
                    flipped = FLIPPED[type(op)]
                    yield node, which, f"{SYMBOL[type(op)]} → {SYMBOL[flipped]}"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv):
            yield node, 0, "floor // → ceiling"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("min", "max")
        ):
            yield node, 0, f"{node.func.id} → {'max' if node.func.id == 'min' else 'min'}"


def mutants(module: Path) -> list[Mutant]:
    tree = ast.parse((ROOT / module).read_text())
    return [
        Mutant(module, index, getattr(node, "lineno", 0), change)
        for index, (node, _, change) in enumerate(_points(tree))
    ]


class _Ceiling(ast.NodeTransformer):
    def __init__(self, target: ast.BinOp) -> None:
        self.target = target

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        if node is self.target:
            negated = ast.UnaryOp(ast.USub(), node.left)
            return ast.UnaryOp(ast.USub(), ast.BinOp(negated, ast.FloorDiv(), node.right))
        return self.generic_visit(node)


def mutated_source(mutant: Mutant) -> str:
    tree = ast.parse((ROOT / mutant.module).read_text())
    node, which, _ = list(_points(tree))[mutant.index]
    if isinstance(node, ast.Compare):
        node.ops[which] = FLIPPED[type(node.ops[which])]()
    elif isinstance(node, ast.BinOp):
        tree = _Ceiling(node).visit(tree)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        node.func = copy.copy(node.func)
        node.func.id = "max" if node.func.id == "min" else "min"
    return ast.unparse(ast.fix_missing_locations(tree))


def _phases(module: Path) -> list[list[str]]:
    """The test files to run, in two rounds: the module's own (test_money*.py for
    money.py), then the rest of the suite with the Hypothesis properties last."""
    files = sorted(p.name for p in (ROOT / TESTS).glob("test_*.py"))
    own = [
        f for f in files if f == f"test_{module.stem}.py" or f.startswith(f"test_{module.stem}_")
    ]
    rest = [f for f in files if f not in own and f != SLOW] + [SLOW]
    return [[str(TESTS / f) for f in phase] for phase in (own, rest) if phase]


def _pytest(files: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "-x", "-q", "--no-header", "-p", "no:cacheprovider",
        *files,
    ]  # fmt: skip


def _workdir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="loyalty-mutants-"))
    for name in COPIED:
        source = ROOT / name
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return directory


def run(mutant: Mutant, workdir: Path, *, timeout: float) -> Verdict:
    """Apply `mutant` in `workdir`, run the suite, put the module back."""
    target = workdir / mutant.module
    original = target.read_text()
    target.write_text(mutated_source(mutant))
    started = time.monotonic()
    outcome = "survived"
    try:
        for files in _phases(mutant.module):
            left = timeout - (time.monotonic() - started)
            done = subprocess.run(
                _pytest(files), cwd=workdir, capture_output=True, timeout=left, check=False
            )
            if done.returncode != 0:
                outcome = "killed" if done.returncode == 1 else "error"
                break
    except subprocess.TimeoutExpired:
        outcome = "timeout"
    finally:
        target.write_text(original)
    return Verdict(mutant, outcome, time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "modules", nargs="*", help="modules of pricing/, or MODULE:LINE for one line's mutants"
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutant")
    parser.add_argument("--fail-under", type=float, default=90.0, help="per cent killed")
    args = parser.parse_args()
    wanted = [m.partition(":") for m in args.modules]
    modules = sorted({Path(m) for m, _, _ in wanted}) or sorted(
        p.relative_to(ROOT) for p in (ROOT / "pricing").glob("*.py")
    )
    lines = {(Path(m), int(line)) for m, _, line in wanted if line}
    todo = [
        m
        for module in modules
        for m in mutants(module)
        if not any(path == module for path, _ in lines) or (module, m.line) in lines
    ]
    print(f"{len(todo)} mutants in {len(modules)} modules; {args.jobs} at a time", flush=True)
    workdirs = [_workdir() for _ in range(args.jobs)]
    free: queue.SimpleQueue[Path] = queue.SimpleQueue()
    for directory in workdirs:
        free.put(directory)

    def one(mutant: Mutant) -> Verdict:
        workdir = free.get()  # a copy of the repository no other job is using
        try:
            return _report(run(mutant, workdir, timeout=args.timeout))
        finally:
            free.put(workdir)

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            verdicts = list(pool.map(one, todo))
    finally:
        for directory in workdirs:
            shutil.rmtree(directory, ignore_errors=True)
    return _summary(verdicts, fail_under=args.fail_under)


def _report(verdict: Verdict) -> Verdict:
    m = verdict.mutant
    took = f"{verdict.seconds:.0f} s"
    print(f"{verdict.outcome:8} {m.module}:{m.line} {m.change} ({took})", flush=True)
    return verdict


def _summary(verdicts: list[Verdict], *, fail_under: float) -> int:
    # A run that does not end by the timeout counts as killed (a mutant that loops forever
    # is noticed), but is listed: on a starved machine it may only be slow.
    killed = sum(v.outcome in ("killed", "timeout") for v in verdicts)
    timeouts = sum(v.outcome == "timeout" for v in verdicts)
    errors = [v for v in verdicts if v.outcome == "error"]
    score = 100 * killed / len(verdicts) if verdicts else 100.0
    print(
        f"\n{killed} of {len(verdicts)} mutants killed: {score:.1f} % "
        f"({timeouts} of them by the timeout; errors: {len(errors)})"
    )
    for v in verdicts:
        if v.outcome in ("survived", "timeout", "error"):
            print(f"  {v.outcome}: {v.mutant.module}:{v.mutant.line} {v.mutant.change}")
    return 0 if score >= fail_under else 1


if __name__ == "__main__":
    sys.exit(main())
