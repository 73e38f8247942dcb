"""The `loyalty-server` command: serve (default) or run a maintenance subcommand."""

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.exc import OperationalError

from server.app import database_engine, serve
from server.check_config import check_config
from server.config import Config, parse
from server.reconcile import print_report, reconcile
from server.service.expire import expire_points
from server.store.db import Database, DatabaseUnavailable
from server.store.migrate import migrate


def _serve_workers(config: Config) -> int:
    """Fork `workers` processes sharing the port (SO_REUSEPORT) before gRPC starts in any."""
    children = []
    for index in range(config.workers):
        pid = os.fork()
        if pid == 0:
            asyncio.run(serve(config, reuse_port=True, worker=index))
            os._exit(0)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status


def _expire(config: Config) -> int:
    engine = database_engine(config)
    migrate(engine)
    now = config.as_of or datetime.now(UTC)
    report = expire_points(Database(engine), now=now)
    engine.dispose()
    print(f"expired {report.points} points in {report.accounts} accounts up to {now.isoformat()}")
    return 0


def _reconcile(config: Config) -> int:
    """0: every account agrees; 1: mismatches, each printed; 3: no database to check."""
    engine = database_engine(config)
    try:
        migrate(engine)
        report = reconcile(engine, as_of=config.as_of)
    except (DatabaseUnavailable, OperationalError) as exc:
        print(f"reconcile: the database cannot be reached: {exc}", file=sys.stderr)
        return 3
    finally:
        engine.dispose()
    return print_report(report)


def configure_logging(config: Config) -> None:
    """Structured JSON lines by default (one per call from the access log), or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level)


def main(argv: Sequence[str] | None = None) -> int:
    command, config = parse(argv)
    configure_logging(config)
    if command == "check-config":
        code, report = check_config(config.programs)
        print(report)
        return code
    if command == "migrate":
        engine = database_engine(config)
        migrate(engine)
        engine.dispose()
        logging.getLogger(__name__).info("schema is at the newest revision")
        return 0
    if command == "expire":
        return _expire(config)
    if command == "reconcile":
        return _reconcile(config)
    if config.workers > 1:
        return _serve_workers(config)
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
