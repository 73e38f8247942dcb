"""`loyalty-server report liability|roll-forward`: the finance reports straight from the database.

Like `reconcile`, it reads the database itself (no server needed) in one snapshot and
prints what `loyalty report` prints over gRPC: a table a finance person reads, CSV or
JSON, and with `--chart FILE` a picture (matplotlib, the `charts` extra).
"""

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.message import Message
from sqlalchemy.exc import OperationalError

from loyalty.client import reports
from pricing.errors import DomainError
from pricing.program import load_programs
from server.api.reporting import liability_response, roll_forward_response
from server.config import DEFAULT_DATABASE_URL, SHIPPED_PROGRAMS, _instant
from server.service.deps import Deps
from server.service.reporting import get_liability, get_roll_forward
from server.store.db import Database, DatabaseUnavailable, create_database_engine, normalize_url
from server.store.migrate import migrate


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loyalty-server report",
        description="The points liability of a program at an instant, or how it moved over "
        "a window (opening + issued + reinstated − redeemed − expired − clawed back − debt "
        "incurred = closing), read from the database in one snapshot.",
    )
    p.add_argument("kind", choices=["liability", "roll-forward"])
    p.add_argument("--program", required=True, help="program id, e.g. stomatorg")
    window = "roll-forward: the window's"
    p.add_argument("--from", dest="start", type=_instant, metavar="INSTANT",
                   help=f"{window} start (default: 365 days before --to)")  # fmt: skip
    p.add_argument("--to", dest="end", type=_instant, metavar="INSTANT",
                   help=f"{window} end (default: now)")  # fmt: skip
    p.add_argument("--as-of", type=_instant, metavar="INSTANT",
                   help="the report's 'now' (default: the clock; tests, demos)")  # fmt: skip
    p.add_argument("--format", choices=reports.FORMATS, default="text")
    p.add_argument("--chart", type=Path, metavar="FILE", help="also draw it (.png or .svg)")
    p.add_argument(
        "--database-url",
        default=env.get("LOYALTY_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="[LOYALTY_DATABASE_URL, default %(default)s]",
    )
    p.add_argument(
        "--programs",
        type=Path,
        default=Path(env.get("LOYALTY_PROGRAMS", str(SHIPPED_PROGRAMS))),
        help="directory of program *.toml files [LOYALTY_PROGRAMS]",
    )
    return p


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """0: printed; 1: the report was refused (unknown program, bad window); 2: bad usage;
    3: no database."""
    args = parser(os.environ if env is None else env).parse_args(argv)
    database = Database(create_database_engine(normalize_url(args.database_url), pool_size=1))
    deps = Deps(database, load_programs(args.programs))
    now = args.as_of or datetime.now(UTC)
    try:
        migrate(database.engine)
        message: Message
        if args.kind == "liability":
            message = liability_response(get_liability(deps, program_id=args.program, now=now))
        else:
            end = args.end or now
            start = args.start or end - timedelta(days=365)
            report = get_roll_forward(deps, program_id=args.program, start=start, end=end, now=now)
            message = roll_forward_response(report)
        if args.chart is not None:
            reports.chart(message, args.chart, program_id=args.program)
    except (DatabaseUnavailable, OperationalError) as exc:
        print(f"report: the database cannot be reached: {exc}", file=sys.stderr)
        return 3
    except DomainError as exc:
        print(f"report: {exc.message}", file=sys.stderr)
        return 1
    except reports.ChartError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    finally:
        database.engine.dispose()
    print(reports.render(message, fmt=args.format, program_id=args.program))
    return 0
