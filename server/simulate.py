"""`loyalty-server simulate`: recorded orders replayed under a draft program (docs/rules.md §11).

It reads one snapshot and writes nothing, so it runs beside a serving
server: the draft is validated as a program file first, then every order
first recorded in [--from, --to) is priced under the program in force and
under the draft by the same pricing code the service runs.
"""

import argparse
import csv
import io
import json
import multiprocessing
import os
import queue
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from tqdm import tqdm

from pricing.program import Program, ProgramConfigError, load_program, load_programs
from pricing.whatif import Replay, Replayer, Summary, Totals, summarize
from server.config import DEFAULT_DATABASE_URL, SHIPPED_PROGRAMS
from server.store.db import create_database_engine
from server.store.order_history import Window, count_orders, customer_ranges, recorded_orders

FORMATS = ("text", "csv", "json")
_COLUMNS = (
    "orders",
    "max_points_then",
    "max_points_draft",
    "max_points_change",
    "points_spent",
    "points_earned_then",
    "points_earned_draft",
    "points_earned_change",
    "binding_changed",
)


class SimulateError(Exception):
    """Why a simulation cannot run (bad draft, unknown program, no database): exit 2."""


@dataclass(frozen=True)
class Request:
    program: Program
    draft: Program
    draft_path: Path
    window: Window
    per_order: bool
    workers: int | None = None  # processes; None: one per CPU for a large window


# Below this many orders a window is replayed in this process: starting workers costs more.
PARALLEL_FROM = 20_000


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loyalty-server simulate",
        description="Replay the orders recorded in a window under a draft program file and "
        "report what would change, per tier and in total. Reads a snapshot, writes nothing.",
    )
    p.add_argument("--program", required=True, help="id of the program in force")
    p.add_argument("--draft", required=True, type=Path, help="the draft program file (TOML)")
    p.add_argument("--from", dest="start", required=True, type=_instant,
                   help="first instant of the window, with a UTC offset (inclusive)")  # fmt: skip
    p.add_argument("--to", dest="end", required=True, type=_instant,
                   help="end of the window, with a UTC offset (exclusive)")  # fmt: skip
    p.add_argument("--per-order", action="store_true", help="also one row per order")
    p.add_argument("--format", choices=FORMATS, default="text", help="text (default), csv, json")
    p.add_argument("--chart", type=Path, help="draw the comparison to FILE (.png or .svg)")
    p.add_argument("--workers", type=_positive, help="worker processes on PostgreSQL, each "
                   f"replaying a range of customers (default: one per CPU from {PARALLEL_FROM:,} "
                   "orders on)")  # fmt: skip
    p.add_argument(
        "--database-url",
        default=env.get("LOYALTY_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="the database the server uses (LOYALTY_DATABASE_URL)",
    )
    p.add_argument(
        "--programs",
        type=Path,
        default=Path(env.get("LOYALTY_PROGRAMS", SHIPPED_PROGRAMS)),
        help="directory of the program files in force (LOYALTY_PROGRAMS)",
    )
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2026-03-01T00:00Z")
    return value


def main(argv: Sequence[str], *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parser(os.environ).parse_args(argv)
    try:
        request = _request(args)
        engine = create_database_engine(args.database_url, pool_size=1)
        try:
            summary, replays = run(engine, request, progress=err)
        finally:
            engine.dispose()
    except SimulateError as exc:
        print(f"simulate: {exc}", file=err)
        return 2
    write(summary, replays, request=request, form=args.format, out=out)
    if args.chart:
        draw(summary, request=request, path=args.chart)
        print(f"chart written to {args.chart}", file=err)
    return 0


def _request(args: argparse.Namespace) -> Request:
    try:
        programs = load_programs(args.programs)
        draft = load_program(args.draft)
    except ProgramConfigError as exc:
        raise SimulateError(str(exc)) from exc
    except OSError as exc:
        raise SimulateError(f"{exc.filename}: cannot read: {exc.strerror}") from exc
    program = programs.get(args.program)
    if program is None:
        raise SimulateError(f"no program {args.program!r} in {args.programs}")
    if draft.id != program.id or draft.currency != program.currency:
        raise SimulateError(
            f"{args.draft}: a draft of {program.id!r} ({program.currency}) must keep its id "
            f"and currency, got {draft.id!r} ({draft.currency})"
        )
    if args.end <= args.start:
        raise SimulateError("--to must be after --from")
    window = Window(program.id, program.currency, args.start, args.end)
    return Request(program, draft, args.draft, window, args.per_order, args.workers)


def run(
    engine: Engine, request: Request, *, progress: TextIO | None = None
) -> tuple[Summary, list[Replay]]:
    """Replay every order of the window; keep each replay only when asked for per order.

    On PostgreSQL a large window is split by customer over worker processes, each reading
    the snapshot of this transaction (`pg_export_snapshot`): the figures are the same.
    """
    tiers = [tier.id for tier in request.program.tiers]
    summary = summarize(request.program, request.draft, (), tiers=tiers)
    kept: list[Replay] = []
    with _snapshot(engine) as connection:
        total = count_orders(connection, request.window)
        bar = tqdm(total=total, unit="order", file=progress,
                   disable=progress is None or not progress.isatty())  # fmt: skip
        with bar:
            workers = worker_count(engine, request, total)
            if workers == 1:
                parts = [_replay_part(connection, request, bar.update)]
            else:
                snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
                windows = customer_ranges(connection, request.window, workers)
                url = engine.url.render_as_string(hide_password=False)
                parts = _in_workers(url, request, snapshot, windows, bar.update)
    for part in parts:
        summary.merge(part.summary)
        kept += part.kept
    return summary, kept


@dataclass
class _Part:
    """What one process replayed: its summary, and its replays when kept per order."""

    summary: Summary
    kept: list[Replay]


def worker_count(engine: Engine, request: Request, total: int) -> int:
    """How many processes replay a window of `total` orders."""
    if engine.dialect.name != "postgresql":
        return 1  # SQLite: one reader
    if request.workers is not None:
        return request.workers
    return (os.cpu_count() or 1) if total >= PARALLEL_FROM else 1


def _replay_part(
    connection: Connection, request: Request, advance: Callable[[int], object]
) -> _Part:
    replayer = Replayer(request.program, request.draft)
    kept: list[Replay] = []
    summary = summarize(request.program, request.draft, ())
    done = 0
    for order in recorded_orders(connection, request.window):
        if not order.whole:
            summary.not_whole += 1
            continue
        replayed = replayer.replay(order)
        summary.add(replayed)
        if request.per_order:
            kept.append(replayed)
        done += 1
        if done == _PROGRESS_EVERY:
            advance(done)
            done = 0
    advance(done)
    return _Part(summary, kept)


_PROGRESS_EVERY = 500  # orders a process replays between two reports to the progress bar
_updates: Any = None  # in a worker: the queue its progress goes to


def _in_workers(
    url: str,
    request: Request,
    snapshot: str,
    windows: list[Window],
    advance: Callable[[int], object],
) -> list[_Part]:
    """Each window's part replayed by a worker process of its own, in the exported snapshot."""
    context = multiprocessing.get_context("spawn")  # nothing of this process's connections
    updates = context.Queue()
    with ProcessPoolExecutor(
        len(windows), mp_context=context, initializer=_start_worker, initargs=(updates,)
    ) as pool:
        futures = [
            pool.submit(_worker, url, replace(request, window=window), snapshot)
            for window in windows
        ]
        while not all(future.done() for future in futures):
            with suppress(queue.Empty):
                advance(updates.get(timeout=0.2))
        try:
            return [future.result() for future in futures]
        except BrokenProcessPool as exc:
            raise SimulateError(f"a worker process ended abruptly: {exc}") from exc


def _start_worker(updates: Any) -> None:
    global _updates  # a worker's one queue, set as it starts
    _updates = updates


def _worker(url: str, request: Request, snapshot: str) -> _Part:
    engine = create_database_engine(url, pool_size=1)
    try:
        with _snapshot(engine, snapshot=snapshot) as connection:
            return _replay_part(connection, request, _updates.put)
    finally:
        engine.dispose()


@contextmanager
def _snapshot(engine: Engine, *, snapshot: str | None = None) -> Iterator[Connection]:
    """One read-only transaction: every figure comes from the same moment.

    `snapshot` (PostgreSQL): the one another transaction exported, so workers read as it does.
    """
    if engine.dialect.name == "postgresql":
        options: dict[str, Any] = {
            "isolation_level": "REPEATABLE READ",
            "postgresql_readonly": True,
        }
    else:
        options = {"loyalty_read": True}  # SQLite: a deferred BEGIN (server/store/db.py)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**options)
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    if snapshot is not None:
                        if not _SNAPSHOT_ID.fullmatch(snapshot):
                            raise SimulateError(f"not a snapshot id: {snapshot!r}")
                        connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    # A replay's few large reads: compiling them costs more than it saves.
                    connection.exec_driver_sql("SET LOCAL jit = off")
                yield connection
    except DBAPIError as exc:
        raise SimulateError(f"the database cannot be read: {exc.orig}") from exc


_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")


def totals_row(totals: Totals) -> dict[str, int]:
    return {column: getattr(totals, column) for column in _COLUMNS}


def write(
    summary: Summary, replays: Iterable[Replay], *, request: Request, form: str, out: TextIO
) -> None:
    if form == "json":
        json.dump(as_json(summary, replays, request=request), out, indent=2)
        out.write("\n")
    elif form == "csv":
        out.write(as_csv(summary, replays))
    else:
        out.write(as_text(summary, replays, request=request))


def as_json(summary: Summary, replays: Iterable[Replay], *, request: Request) -> dict[str, Any]:
    def group(totals: Totals) -> dict[str, int]:
        return {
            **totals_row(totals),
            "max_value_change_minor": totals.max_points_change * summary.point_value_minor,
            "earned_value_change_minor": totals.points_earned_change * summary.point_value_minor,
        }

    return {
        "program_id": request.program.id,
        "draft": str(request.draft_path),
        "from": request.window.start.isoformat(),
        "to": request.window.end.isoformat(),
        "currency": request.program.currency,
        "point_value_minor": summary.point_value_minor,
        "by_tier": {tier: group(totals) for tier, totals in summary.by_tier.items()},
        "total": group(summary.total),
        "orders_without_whole_lines": summary.not_whole,
        "orders": [_order_row(r) for r in replays],
    }


def as_csv(summary: Summary, replays: Iterable[Replay]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["tier", *_COLUMNS])
    for tier, totals in [*summary.by_tier.items(), ("total", summary.total)]:
        writer.writerow([tier, *totals_row(totals).values()])
    rows = [_order_row(r) for r in replays]
    if rows:
        writer.writerow([])
        writer.writerow(list(rows[0]))
        writer.writerows(row.values() for row in rows)
    return buffer.getvalue()


def _order_row(replayed: Replay) -> dict[str, Any]:
    return {
        "order_id": replayed.order.order_id,
        "customer_id": replayed.order.customer_id,
        "placed_at": replayed.order.placed_at.isoformat(),
        "tier_then": replayed.then.tier_id,
        "tier_draft": replayed.draft.tier_id,
        "max_points_then": replayed.then.max_points,
        "max_points_draft": replayed.draft.max_points,
        "binding_then": replayed.then.binding.value,
        "binding_draft": replayed.draft.binding.value,
        "points_spent": replayed.order.points_spent,
        "points_earned_then": replayed.then.points_earned,
        "points_earned_draft": replayed.draft.points_earned,
    }


def money(points: int, *, point_value_minor: int, currency: str) -> str:
    """Points as money in the currency's own minor digits (CLDR, through Babel)."""
    from babel.numbers import format_currency, get_currency_precision

    digits = get_currency_precision(currency)
    amount = (points * point_value_minor) / 10**digits
    return format_currency(amount, currency, locale="en_US", format_type="standard")


def as_text(summary: Summary, replays: Iterable[Replay], *, request: Request) -> str:
    window = request.window
    lines = [
        f"What-if for {request.program.id}: draft {request.draft_path}",
        f"orders first recorded in [{window.start.isoformat()}, {window.end.isoformat()})",
        "",
    ]
    header = ("tier", "orders", "max then", "max draft", "change", "spent",
              "earned then", "earned draft", "change", "binding changed")  # fmt: skip
    table = [header]
    for tier, totals in [*summary.by_tier.items(), ("total", summary.total)]:
        t = totals
        table.append((tier, f"{t.orders:,}", f"{t.max_points_then:,}", f"{t.max_points_draft:,}",
                      f"{t.max_points_change:+,}", f"{t.points_spent:,}",
                      f"{t.points_earned_then:,}", f"{t.points_earned_draft:,}",
                      f"{t.points_earned_change:+,}", f"{t.binding_changed:,}"))  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    if summary.not_whole:
        lines.append(
            f"{summary.not_whole:,} orders left out: recorded before their lines were kept whole"
        )
    lines += _money_lines(summary, request=request)
    for replayed in replays:
        each = _order_row(replayed)
        lines.append(
            f"{each['order_id']}  {each['tier_then']}  max {each['max_points_then']} → "
            f"{each['max_points_draft']} ({each['binding_then']} → {each['binding_draft']}), "
            f"earned {each['points_earned_then']} → {each['points_earned_draft']}"
        )
    return "\n".join(lines) + "\n"


def _money_lines(summary: Summary, *, request: Request) -> list[str]:
    pv, currency = summary.point_value_minor, request.program.currency
    total = summary.total
    lines = [
        f"spendable: {total.max_points_change:+,} points "
        f"({money(total.max_points_change, point_value_minor=pv, currency=currency)})",
        f"earned:    {total.points_earned_change:+,} points "
        f"({money(total.points_earned_change, point_value_minor=pv, currency=currency)})",
    ]
    if total.max_points_change:
        for tier, totals in summary.by_tier.items():
            if totals.max_points_change:
                share = 100 * totals.max_points_change / total.max_points_change
                lines.append(f"{tier} carries {share:.1f} % of the change in spendable points")
    return lines


def draw(summary: Summary, *, request: Request, path: Path) -> None:
    """Per tier: the most that could be spent and what is earned, then and under the draft."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # an optional extra
        raise SimulateError(
            "--chart needs matplotlib: pip install 'loyalty-server[charts]'"
        ) from exc
    tiers = list(summary.by_tier)
    figure, (spend, earn) = plt.subplots(1, 2, figsize=(10, 4))
    positions = range(len(tiers))
    for axes, then, draft, title in (
        (spend, "max_points_then", "max_points_draft", "points that could be spent"),
        (earn, "points_earned_then", "points_earned_draft", "points earned"),
    ):
        values_then = [getattr(summary.by_tier[t], then) for t in tiers]
        values_draft = [getattr(summary.by_tier[t], draft) for t in tiers]
        axes.bar([p - 0.2 for p in positions], values_then, width=0.4, label="in force")
        axes.bar([p + 0.2 for p in positions], values_draft, width=0.4, label="draft")
        axes.set_xticks(list(positions), tiers)
        axes.set_title(title)
        axes.legend()
    figure.suptitle(f"What-if: {request.program.id} under {request.draft_path.name}")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
