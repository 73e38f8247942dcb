"""Configuration: every option of `loyalty-server` and its environment twin (SPEC §9)."""

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DATABASE_URL = "sqlite:///var/loyalty.sqlite3"
SHIPPED_PROGRAMS = Path(__file__).resolve().parent.parent / "programs"


@dataclass(frozen=True)
class Config:
    listen: str = DEFAULT_LISTEN
    database_url: str = DEFAULT_DATABASE_URL
    programs: Path = SHIPPED_PROGRAMS
    allow_clock_override: bool = False
    workers: int = 1
    db_pool_size: int = 8
    grace_seconds: float = 5.0
    health_interval_seconds: float = 1.0
    expire_every_seconds: float = 60.0
    as_of: datetime | None = None
    metrics_listen: str = ""
    log_level: str = "INFO"
    log_format: str = "json"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2026-03-01T00:00Z")
    return value


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loyalty-server",
        description="Loyalty checkout pricing service (gRPC). With no subcommand it serves.",
    )
    p.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate", "expire", "check-config"],
        help="serve (default); migrate: create or upgrade the schema and exit; "
        "expire: write EXPIRY ledger entries for points that expired, and exit; "
        "check-config: validate the program files and print what each allows",
    )
    p.add_argument(
        "--listen",
        default=env.get("LOYALTY_LISTEN", DEFAULT_LISTEN),
        help="HOST:PORT to serve on [LOYALTY_LISTEN, default %(default)s]",
    )
    p.add_argument(
        "--database-url",
        default=env.get("LOYALTY_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="SQLAlchemy URL; plain postgresql:// works [LOYALTY_DATABASE_URL, "
        "default %(default)s]",
    )
    p.add_argument(
        "--programs",
        type=Path,
        default=Path(env.get("LOYALTY_PROGRAMS", str(SHIPPED_PROGRAMS))),
        help="directory of program *.toml files [LOYALTY_PROGRAMS, default the shipped ones]",
    )
    p.add_argument(
        "--allow-clock-override",
        action="store_true",
        default=_flag(env.get("LOYALTY_ALLOW_CLOCK_OVERRIDE")),
        help="honour as_of on requests: tests and demos only [LOYALTY_ALLOW_CLOCK_OVERRIDE=1]",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=int(env.get("LOYALTY_WORKERS", "1")),
        help="server processes sharing the port [LOYALTY_WORKERS, default %(default)s]",
    )
    p.add_argument(
        "--db-pool-size",
        type=_positive_int,
        default=int(env.get("LOYALTY_DB_POOL_SIZE", "8")),
        help="database connections (and worker threads) per process "
        "[LOYALTY_DB_POOL_SIZE, default %(default)s]",
    )
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=float(env.get("LOYALTY_GRACE_SECONDS", "5")),
        help="how long in-flight calls may finish on SIGTERM [LOYALTY_GRACE_SECONDS]",
    )
    p.add_argument(
        "--expire-every",
        type=float,
        default=float(env.get("LOYALTY_EXPIRE_EVERY", "60")),
        help="seconds between runs of the expiry job inside the server; 0 turns it off; "
        "it never runs with clock override [LOYALTY_EXPIRE_EVERY, default %(default)s]",
    )
    p.add_argument(
        "--as-of",
        type=_instant,
        default=None,
        help="`expire` only, with --allow-clock-override: the instant to expire up to "
        "(ISO 8601 with offset)",
    )
    p.add_argument(
        "--metrics-listen",
        default=env.get("LOYALTY_METRICS_LISTEN", ""),
        help="HOST:PORT for Prometheus /metrics over HTTP; off when empty (with --workers N, "
        "worker i listens on PORT+i) [LOYALTY_METRICS_LISTEN]",
    )
    p.add_argument(
        "--log-format",
        default=env.get("LOYALTY_LOG_FORMAT", "json"),
        choices=["json", "text"],
        help="json: one JSON object per line (default); text: for a terminal [LOYALTY_LOG_FORMAT]",
    )
    p.add_argument(
        "--log-level",
        default=env.get("LOYALTY_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="[LOYALTY_LOG_LEVEL, default %(default)s]",
    )
    return p


def parse(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, Config]:
    p = parser(os.environ if env is None else env)
    args = p.parse_args(argv)
    if args.as_of is not None and not (args.command == "expire" and args.allow_clock_override):
        p.error("--as-of needs the expire command and --allow-clock-override")
    return args.command, Config(
        listen=args.listen,
        database_url=args.database_url,
        programs=args.programs,
        allow_clock_override=args.allow_clock_override,
        workers=args.workers,
        db_pool_size=args.db_pool_size,
        grace_seconds=args.grace_seconds,
        expire_every_seconds=args.expire_every,
        as_of=args.as_of,
        metrics_listen=args.metrics_listen,
        log_level=args.log_level,
        log_format=args.log_format,
    )
