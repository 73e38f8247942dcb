"""The `loyalty-server` command: serve (default) or run a maintenance subcommand."""

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import OperationalError

from pricing.program import ProgramConfigError, load_programs
from server import event_loop, logs, simulate
from server import report as report_command
from server.api.auth import Tokens, TokensError, load_tokens
from server.app import CannotListen, TlsFiles, database_engine, read_tls, serve
from server.check_config import check_config
from server.config import Config, exposure_problem, parse
from server.reconcile import print_report, reconcile
from server.service.expire import expire_points
from server.store.db import Database, DatabaseUnavailable
from server.store.migrate import migrate
from server.store.reporting import fold_totals
from server.texts.texts import Languages

log = logging.getLogger("server.main")


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _serve(config: Config, *, tokens: Tokens, tls: TlsFiles | None, worker: int | None) -> int:
    """Serve in this process until stopped, then exit 0; 2 when the address cannot be bound."""
    try:
        event_loop.run(
            serve(config, tokens=tokens, tls=tls, reuse_port=worker is not None, worker=worker or 0)
        )
    except CannotListen as exc:
        return _refuse(f"{exc}; choose another address with --listen or LOYALTY_LISTEN")
    # Stopped: leave now. An ordinary exit would wait for pool threads still blocked in the
    # database (serve() returned False) and, in any case, for gRPC's own teardown at
    # interpreter exit (2-3 s measured on this machine), past the promised grace + 1 s.
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


def _die_with_parent() -> None:
    """Linux: this process gets SIGTERM when its parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _serve_workers(config: Config, *, tokens: Tokens, tls: TlsFiles | None) -> int:
    """Fork `workers` processes sharing the port (SO_REUSEPORT) before gRPC starts in any.

    SIGTERM and SIGINT are blocked while forking, so a stop that arrives meanwhile is
    forwarded to every child once they all exist, never leaving one running unowned.
    """
    parent = os.getpid()
    children: list[int] = []
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    for index in range(config.workers):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            if os.getppid() != parent:  # the parent is already gone
                os._exit(0)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            os._exit(_serve(config, tokens=tokens, tls=tls, worker=index))
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a pending stop is forwarded now
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
    fold_totals(Database(engine))  # the finance reports' running totals (docs/finance.md)
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
    logs.configure(level=config.log_level, as_json=config.log_format == "json")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["report"]:  # its own options: `loyalty-server report --help`
        return report_command.main(arguments[1:])
    if arguments[:1] == ["simulate"]:  # its own options: `loyalty-server simulate --help`
        return simulate.main(arguments[1:])
    command, config = parse(arguments)
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
    try:
        tokens = load_tokens(path=config.tokens_file, env_value=config.tokens_env)
        tls = read_tls(config)
        Languages(load_programs(config.programs))  # the program files and their texts
    except (TokensError, ProgramConfigError) as exc:
        return _refuse(str(exc))
    except OSError as exc:
        return _refuse(f"{exc.filename}: cannot read: {exc.strerror}")
    problem = exposure_problem(config, has_tokens=bool(tokens))
    if problem:
        return _refuse(problem)
    if tokens.plain:
        log.warning(
            "%d of %d tokens are configured in plain text; configure sha256:HEX digests instead",
            tokens.plain,
            len(tokens.entries),
        )
    if config.workers > 1:
        return _serve_workers(config, tokens=tokens, tls=tls)
    return _serve(config, tokens=tokens, tls=tls, worker=None)


def _refuse(reason: str) -> int:
    """A configuration the server will not start with: say why, exit 2 (bad usage)."""
    log.error("not starting: %s", reason)
    return 2


if __name__ == "__main__":
    sys.exit(main())
