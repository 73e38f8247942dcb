"""Configuration: every option of `loyalty-server` and its environment twin (docs/rules.md §9)."""

import argparse
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DATABASE_URL = "sqlite:///var/loyalty.sqlite3"
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_RPCS = 1000
SHIPPED_PROGRAMS = Path(__file__).resolve().parent.parent / "programs"


@dataclass(frozen=True)
class Config:
    listen: str = DEFAULT_LISTEN
    database_url: str = DEFAULT_DATABASE_URL
    programs: Path = SHIPPED_PROGRAMS
    allow_clock_override: bool = False
    workers: int = 1
    db_pool_size: int = 8
    db_lock_timeout: float = 5.0
    grace_seconds: float = 5.0
    health_interval_seconds: float = 1.0
    expire_every_seconds: float = 60.0
    as_of: datetime | None = None
    metrics_listen: str = ""
    log_level: str = "INFO"
    log_format: str = "json"
    tokens_file: Path | None = None
    tokens_env: str = field(default="", repr=False)  # LOYALTY_TOKENS: secrets, never shown
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS
    explanations: bool = True


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _on(value: str | None) -> bool:
    """Unset or anything but an explicit no: on."""
    return (value or "on").strip().lower() not in {"0", "off", "no", "false"}


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text}")
    return value


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def is_loopback(listen: str) -> bool:
    """Whether HOST:PORT only accepts connections from this machine."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name (it may resolve anywhere), or empty: every interface
        return False


def exposure_problem(config: Config, *, has_tokens: bool) -> str | None:
    """Why the server must not start as configured (docs/rules.md §9: no tokens, loopback only)."""
    if has_tokens or config.insecure or is_loopback(config.listen):
        return None
    return (
        f"refusing to serve on {config.listen} without tokens: anyone who reaches it could "
        "call every RPC. Configure tokens (--tokens FILE or LOYALTY_TOKENS), listen on "
        "loopback (127.0.0.1, [::1], localhost), or pass --insecure to accept that"
    )


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
        choices=["serve", "migrate", "expire", "reconcile", "check-config", "simulate", "report"],
        help="serve (default); migrate: create or upgrade the schema and exit; "
        "expire: write EXPIRY ledger entries for points that expired, and exit; "
        "reconcile: check that every account's buckets, holds, debt and ledger agree "
        "(exit 1 naming each mismatch); "
        "check-config: validate the program files and print what each allows; "
        "simulate: replay recorded orders under a draft program (simulate --help); "
        "report: the finance reports (report --help)",
    )
    p.add_argument(
        "--listen",
        default=env.get("LOYALTY_LISTEN", DEFAULT_LISTEN),
        help="HOST:PORT to serve on; port 0 takes a free port, named in the log's "
        "'serving on' line [LOYALTY_LISTEN, default %(default)s]",
    )
    p.add_argument(
        "--database-url",
        default=env.get("LOYALTY_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="SQLAlchemy URL; plain postgresql:// works, and with several hosts "
        "(postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write) the server "
        "follows a failover [LOYALTY_DATABASE_URL, default %(default)s]",
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
        "--db-lock-timeout",
        type=_positive_seconds,
        default=float(env.get("LOYALTY_DB_LOCK_TIMEOUT", "5")),
        help="the longest a transaction waits for a lock (an account busy in another "
        "transaction) before the call fails ABORTED; a call's own deadline shortens it "
        "[LOYALTY_DB_LOCK_TIMEOUT, default %(default)s]",
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
        help="`expire` and `reconcile` only, with --allow-clock-override: the instant to "
        "expire up to, or to reconcile at (ISO 8601 with offset)",
    )
    p.add_argument(
        "--metrics-listen",
        default=env.get("LOYALTY_METRICS_LISTEN", ""),
        help="HOST:PORT for Prometheus /metrics over HTTP; off when empty (with --workers N, "
        "worker i listens on PORT+i; port 0: free ports, named in 'metrics on' log lines) "
        "[LOYALTY_METRICS_LISTEN]",
    )
    p.add_argument(
        "--tokens",
        type=Path,
        default=_path(env.get("LOYALTY_TOKENS_FILE")),
        metavar="FILE",
        help="bearer tokens and their roles (checkout, payments, finance, admin): "
        "TOML `TOKEN = ROLE` lines, or a .json object; a token may be given as sha256:HEX. "
        "More come from LOYALTY_TOKENS=TOKEN=ROLE,... [LOYALTY_TOKENS_FILE]",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        default=_flag(env.get("LOYALTY_INSECURE")),
        help="allow listening beyond loopback without tokens: anyone reaching the port may "
        "call every RPC [LOYALTY_INSECURE=1]",
    )
    p.add_argument(
        "--tls-cert",
        type=Path,
        default=_path(env.get("LOYALTY_TLS_CERT")),
        metavar="PEM",
        help="serve TLS with this certificate chain (needs --tls-key) [LOYALTY_TLS_CERT]",
    )
    p.add_argument(
        "--tls-key",
        type=Path,
        default=_path(env.get("LOYALTY_TLS_KEY")),
        metavar="PEM",
        help="the certificate's private key [LOYALTY_TLS_KEY]",
    )
    p.add_argument(
        "--tls-client-ca",
        type=Path,
        default=_path(env.get("LOYALTY_TLS_CLIENT_CA")),
        metavar="PEM",
        help="mutual TLS: require a client certificate signed by these CAs [LOYALTY_TLS_CLIENT_CA]",
    )
    p.add_argument(
        "--max-message-bytes",
        type=_positive_int,
        default=int(env.get("LOYALTY_MAX_MESSAGE_BYTES", str(DEFAULT_MAX_MESSAGE_BYTES))),
        help="largest request accepted; larger ones are RESOURCE_EXHAUSTED "
        "[LOYALTY_MAX_MESSAGE_BYTES, default %(default)s]",
    )
    p.add_argument(
        "--max-concurrent-rpcs",
        type=_positive_int,
        default=int(env.get("LOYALTY_MAX_CONCURRENT_RPCS", str(DEFAULT_MAX_CONCURRENT_RPCS))),
        help="calls in progress per process (health checks included); more are answered "
        "RESOURCE_EXHAUSTED at once [LOYALTY_MAX_CONCURRENT_RPCS, default %(default)s]",
    )
    p.add_argument(
        "--no-explanations",
        dest="explanations",
        action="store_false",
        default=(env.get("LOYALTY_EXPLANATIONS") or "on").strip().lower()
        not in {"0", "off", "no", "false"},
        help="answer quotes without explanation texts (errors keep their LocalizedMessage); "
        "`make bench` measures what they cost [LOYALTY_EXPLANATIONS=off]",
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
    env_map = os.environ if env is None else env
    p = parser(env_map)
    args = p.parse_args(argv)
    if args.as_of is not None and not (
        args.command in ("expire", "reconcile") and args.allow_clock_override
    ):
        p.error("--as-of needs the expire or reconcile command and --allow-clock-override")
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        p.error("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
    return args.command, Config(
        listen=args.listen,
        database_url=args.database_url,
        programs=args.programs,
        allow_clock_override=args.allow_clock_override,
        workers=args.workers,
        db_pool_size=args.db_pool_size,
        db_lock_timeout=args.db_lock_timeout,
        grace_seconds=args.grace_seconds,
        expire_every_seconds=args.expire_every,
        as_of=args.as_of,
        metrics_listen=args.metrics_listen,
        log_level=args.log_level,
        log_format=args.log_format,
        tokens_file=args.tokens,
        tokens_env=env_map.get("LOYALTY_TOKENS", ""),
        insecure=args.insecure,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        max_message_bytes=args.max_message_bytes,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        explanations=args.explanations,
    )
