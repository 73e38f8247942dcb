"""The processes a run starts: the service, the echo server, fresh databases; and CPU sampling."""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import psutil
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.payloads import QUOTE, Templates
from loyalty.v1 import redemption_service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]


def add_postgres_url(parser: argparse.ArgumentParser) -> None:
    """`--postgres-url`: where a run creates its databases (and drops them)."""
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "LOYALTY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin URL: the run creates its own databases there and drops them",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and all their children, so far."""
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def postgres_cpu(database: str | None) -> dict[int, float]:
    """CPU so far of PostgreSQL's processes working for `database` (its backends and its
    autovacuum workers), or with None of the shared background ones (WAL writer,
    checkpointer ...), which also work for anything else on this server; other databases'
    processes are left out. `cpu_delta` subtracts two samples."""
    seen = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] != "postgres":
            continue
        title = " ".join(proc.info["cmdline"] or ())
        per_database = "(" in title or "[local]" in title or "autovacuum worker" in title
        if database is None:
            if per_database:
                continue
        elif not per_database or f" {database}" not in title:
            continue
        try:
            times = proc.cpu_times()
            seen[proc.pid] = times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return seen


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two samples by processes alive at the second (new ones: all of it)."""
    return sum(max(0.0, spent - before.get(pid, 0.0)) for pid, spent in after.items())


class Server:
    """A server process on a free port: `python -m server.main` or `python -m bench.echo`."""

    def __init__(
        self, args: list[str], *, log_path: Path, name: str, under: tuple[str, ...] = ()
    ) -> None:
        """`under`: a command the server runs under (a profiler), which slows start-up."""
        self.port = free_port()
        self.ready_seconds = 600 if under else 60
        self.address = f"127.0.0.1:{self.port}"
        self.name = name
        self.log_path = log_path
        self.args = [*under, *(a.replace("{listen}", self.address) for a in args)]
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def loyalty(
        cls,
        database_url: str,
        *,
        workers: int,
        pool_size: int,
        log_path: Path,
        explanations: bool = True,
        under: tuple[str, ...] = (),
    ) -> "Server":
        args = [
            sys.executable, "-m", "server.main",
            "--listen", "{listen}",
            "--database-url", database_url,
            "--workers", str(workers),
            "--db-pool-size", str(pool_size),
            "--expire-every", "0",
            *([] if explanations else ["--no-explanations"]),
        ]  # fmt: skip
        return cls(args, log_path=log_path, name="loyalty", under=under)

    @classmethod
    def echo(cls, *, log_path: Path, under: tuple[str, ...] = ()) -> "Server":
        args = [sys.executable, "-m", "bench.echo", "{listen}"]
        return cls(args, log_path=log_path, name="echo", under=under)

    def start(self) -> "Server":
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_seconds
        with grpc.insecure_channel(self.address) as channel:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} server exited; see {self.log_path}")
                try:
                    if self.name == "echo":
                        # A call, not `channel_ready_future`: a future that times out keeps a
                        # thread polling the channel, which fails once the channel is closed.
                        channel.unary_unary(QUOTE)(b"", timeout=1)
                        return
                    status = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    if status.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"{self.name} server never became ready; see {self.log_path}")

    def points_to_apply(self, program: str, customer: str) -> int:
        """What an apply spends: the quote's maximum for the bench's cart (all-or-nothing
        programs need exactly it)."""
        templates = Templates.build(program_id=program, points=1)
        with grpc.insecure_channel(self.address) as channel:
            answer = pb.QuoteRedemptionResponse.FromString(
                channel.unary_unary(QUOTE)(templates.quote_for(customer), timeout=120)
            )
        return int(answer.options[answer.recommended_option].max_points)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def fresh_postgres(admin_url: str, *, keep: bool = False) -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards unless `keep`); yields its URL."""
    name = f"loyalty_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(database_url: str, *, log_path: Path) -> None:
    with log_path.open("ab") as log:
        subprocess.run(
            [sys.executable, "-m", "server.main", "migrate", "--database-url", database_url],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            check=True,
        )
