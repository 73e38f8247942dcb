"""Builds and runs the gRPC server: servicers, health, reflection, graceful shutdown."""

import asyncio
import errno
import functools
import logging
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from loyalty.v1 import (
    account_service_pb2,
    account_service_pb2_grpc,
    redemption_service_pb2,
    redemption_service_pb2_grpc,
    reporting_service_pb2,
    reporting_service_pb2_grpc,
)
from pricing.program import load_programs
from server.api.account import AccountServicer
from server.api.auth import Tokens
from server.api.edge import Edge, Readiness
from server.api.gate import Gate
from server.api.redemption import RedemptionServicer
from server.api.reflection import enable_reflection
from server.api.reporting import ReportingServicer
from server.api.workers import Workers
from server.config import Config
from server.metrics import Metrics
from server.service.deps import Deps
from server.service.expire import expire_points
from server.store.db import Database, create_database_engine, normalize_url
from server.store.loop_pool import LoopPool
from server.store.migrate import migrate
from server.store.reporting import fold_totals

log = logging.getLogger(__name__)

SERVICES = (
    redemption_service_pb2.DESCRIPTOR.services_by_name["RedemptionService"].full_name,
    account_service_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    reporting_service_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name,
)


@dataclass(frozen=True)
class TlsFiles:
    """PEM contents, read before any worker forks (gRPC objects must not cross a fork)."""

    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None


def read_tls(config: Config) -> TlsFiles | None:
    """The TLS files of `config`, or None for plaintext; OSError names an unreadable one."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    return TlsFiles(config.tls_cert.read_bytes(), config.tls_key.read_bytes(), client_ca)


class CannotListen(Exception):
    """The address to serve on cannot be bound (in use, not this host's, not allowed)."""


# After the grace period, how long the database calls still running may take to end before
# the process leaves them: the database rolls an abandoned transaction back.
DRAIN_SECONDS = 0.5


def _why_not(listen: str) -> str:
    """The operating system's reason `listen` cannot be bound, as far as a probe can tell."""
    host, _, port = listen.rpartition(":")
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, int(port), type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except (OSError, ValueError, IndexError) as exc:
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            return "the address is in use by another process"
        return getattr(exc, "strerror", None) or str(exc)
    return "gRPC could not bind it"


def add_port(server: grpc.aio.Server, listen: str, tls: TlsFiles | None) -> str:
    """Bind `listen` (port 0: any free port); returns the address bound, HOST:PORT."""
    host = listen.rpartition(":")[0]
    try:
        if tls is None:
            return f"{host}:{server.add_insecure_port(listen)}"
        credentials = grpc.ssl_server_credentials(
            [(tls.private_key, tls.certificate_chain)],
            root_certificates=tls.client_ca,
            require_client_auth=tls.client_ca is not None,
        )
        return f"{host}:{server.add_secure_port(listen, credentials)}"
    except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
        raise CannotListen(f"cannot listen on {listen}: {_why_not(listen)}") from exc


def database_engine(config: Config) -> Engine:
    url = make_url(normalize_url(config.database_url))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return create_database_engine(
        str(url.render_as_string(hide_password=False)),
        pool_size=config.db_pool_size,
        lock_timeout=config.db_lock_timeout,
    )


class DatabaseWatch:
    """Migrates once the database answers, then keeps health in step with it."""

    def __init__(
        self,
        database: Database,
        *,
        health: health_aio.HealthServicer,
        readiness: Readiness,
        pool: Workers,
        loop_pool: LoopPool | None = None,
        interval: float,
        on_first_ready: Callable[[], None],
    ) -> None:
        self.database = database
        self.health = health
        self.readiness = readiness
        self.pool = pool
        self.loop_pool = loop_pool
        self.interval = interval
        self.migrated = False
        self.on_first_ready: Callable[[], None] | None = on_first_ready

    def _check(self) -> bool:
        try:
            if not self.migrated:
                migrate(self.database.engine)
                self.migrated = True
                log.info("schema is at the newest revision")
            return self.database.ping()
        except Exception as exc:  # the database is down or refusing: report, don't crash
            log.warning("database not ready: %s", type(exc).__name__)
            return False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ok = await loop.run_in_executor(self.pool, self._check)
            if ok and self.on_first_ready is not None:
                self.on_first_ready()  # migrated and answering: only now say "serving on"
                self.on_first_ready = None
            elif ok != self.readiness.ready:
                log.info("database %s", "reachable: SERVING" if ok else "unreachable: NOT_SERVING")
                if not ok and self.loop_pool is not None:
                    await self.loop_pool.reset()  # as `ping` disposed of the engine's pool
            self.readiness.ready = ok
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if ok
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in ("", *SERVICES):
                await self.health.set(name, status)
            await asyncio.sleep(self.interval if ok else min(self.interval, 0.5))


async def _expire_periodically(
    database: Database,
    pool: Workers,
    readiness: Readiness,
    config: Config,
    metrics: Metrics,
) -> None:
    """The expiry job on the wall clock (never with clock override: docs/rules.md §7)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(config.expire_every_seconds)
        if not readiness.ready:
            continue
        try:
            now = datetime.now(UTC)
            report = await loop.run_in_executor(
                pool, functools.partial(expire_points, database, now=now, metrics=metrics)
            )
            if report.points:
                log.info("expired %d points in %d accounts", report.points, report.accounts)
            # The finance reports' running totals: the changes since the last tick, folded.
            await loop.run_in_executor(pool, fold_totals, database)
        except Exception:
            log.exception("expiry run failed; retrying on the next tick")


async def serve(
    config: Config,
    *,
    tokens: Tokens | None = None,
    tls: TlsFiles | None = None,
    reuse_port: bool = False,
    worker: int = 0,
) -> bool:
    """Serve until SIGTERM or SIGINT, then drain gracefully.

    False when database work was still running after the grace period and a short drain:
    the process must then end with `os._exit`, since an ordinary exit joins those threads
    (`loyalty-server` always does).
    """
    programs = load_programs(config.programs)
    engine = database_engine(config)
    metrics = Metrics()
    database = Database(engine, observer=metrics, lock_timeout=config.db_lock_timeout)
    if config.metrics_listen:
        host, _, port = config.metrics_listen.rpartition(":")
        # worker i on PORT + i; port 0: each worker on a free port of its own
        bound = metrics.serve(f"{host}:{int(port) + worker if int(port) else 0}")
        log.info("metrics on %s:%d", host, bound)
    pool = Workers(config.db_pool_size, name="db")
    readiness = Readiness()
    loop_pool = None
    if engine.dialect.name == "postgresql":
        loop_pool = LoopPool(
            engine, size=config.db_pool_size, observer=metrics, lock_timeout=config.db_lock_timeout
        )
        await loop_pool.open()
    edge = Edge(
        Deps(database, programs, metrics, loop_pool=loop_pool),
        pool=pool,
        readiness=readiness,
        allow_clock_override=config.allow_clock_override,
        explanations=config.explanations,
    )
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.max_receive_message_length", config.max_message_bytes),
        ],
        # Past the cap gRPC answers RESOURCE_EXHAUSTED at once rather than queue the call.
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        interceptors=[Gate(edge, tokens=tokens or Tokens(), services=frozenset(SERVICES))],
    )
    redemption_service_pb2_grpc.add_RedemptionServiceServicer_to_server(
        RedemptionServicer(edge), server
    )
    account_service_pb2_grpc.add_AccountServiceServicer_to_server(AccountServicer(edge), server)
    reporting_service_pb2_grpc.add_ReportingServiceServicer_to_server(
        ReportingServicer(edge), server
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ("", *SERVICES):
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    enable_reflection(
        (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server
    )
    listening = add_port(server, config.listen, tls)
    await server.start()
    shown_url = make_url(normalize_url(config.database_url)).render_as_string(hide_password=True)
    log.info("listening on %s; migrating and waiting for database %s", listening, shown_url)

    def announce() -> None:
        log.info(
            "serving on %s (%s, %s; database %s, programs %s)",
            listening,
            "plaintext" if tls is None else "mutual TLS" if tls.client_ca else "TLS",
            f"{len(tokens.entries)} tokens" if tokens else "no tokens: every call allowed",
            shown_url,
            ", ".join(sorted(programs)),
        )

    watch = DatabaseWatch(
        database,
        health=health,
        readiness=readiness,
        pool=pool,
        loop_pool=loop_pool,
        interval=config.health_interval_seconds,
        on_first_ready=announce,
    )
    watcher = asyncio.create_task(watch.run())
    expiry = None
    if config.expire_every_seconds > 0 and not config.allow_clock_override:
        expiry = asyncio.create_task(
            _expire_periodically(database, pool, readiness, config, metrics)
        )

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()

    log.info("shutting down: NOT_SERVING, draining for up to %.1fs", config.grace_seconds)
    watcher.cancel()
    if expiry is not None:
        expiry.cancel()
    await health.enter_graceful_shutdown()
    await server.stop(config.grace_seconds)
    drained = await _drained(pool, DRAIN_SECONDS)
    if loop_pool is not None:
        await loop_pool.close()
    if drained:
        engine.dispose()
        log.info("stopped")
    else:
        # A database call outlived the grace period (a lock wait, a stalled server): the caller
        # exits without it. Its connection closes and the database rolls its transaction back.
        log.warning("stopped; abandoning database work still running (the database rolls it back)")
    return drained


async def _drained(pool: Workers, seconds: float) -> bool:
    """Whether the pool's threads all end within `seconds` (queued work is dropped)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    def drain() -> None:
        pool.shutdown(wait=True, cancel_futures=True)
        loop.call_soon_threadsafe(finished)

    threading.Thread(target=drain, name="db-drain", daemon=True).start()
    try:
        await asyncio.wait_for(done, seconds)
    except TimeoutError:
        return False
    return True
