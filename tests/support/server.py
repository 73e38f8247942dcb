"""A real `loyalty-server` process for end-to-end tests, and stubs to call it."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loyalty.v1 import (
    account_service_pb2_grpc,
    redemption_service_pb2_grpc,
    reporting_service_pb2_grpc,
)

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port free right now, for what cannot bind port 0 itself (another may take it first)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stubs:
    redemption: redemption_service_pb2_grpc.RedemptionServiceStub
    account: account_service_pb2_grpc.AccountServiceStub
    health: health_pb2_grpc.HealthStub
    reporting: reporting_service_pb2_grpc.ReportingServiceStub


# "listening on" comes first (before migrations and readiness), "serving on" once ready.
SERVING_ON = re.compile(r"(?:listening|serving) on (\S+?):(\d+)[ ;]")
METRICS_ON = re.compile(r"metrics on (\S+:\d+)")


class ServerProcess:
    """`python -m server.main`, started, stopped, killed and restarted at will.

    The first start listens on port 0: the server binds a free port itself (no race with
    another process for it) and names it in its log ("serving on HOST:PORT"), where this
    reads it. Restarts keep that port, so that clients' addresses stay valid.
    """

    def __init__(
        self,
        database_url: str,
        *,
        log_path: Path,
        host: str = "127.0.0.1",
        allow_clock_override: bool = True,
        extra_args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        cwd: Path = ROOT,
        port: int | None = None,
    ) -> None:
        self.database_url = database_url
        self.host = host  # what it listens on; tests always reach it over 127.0.0.1
        # Known once started; given only for a server that cannot name the port 0 bound
        # (an older version's code, which logs the port as configured).
        self.port: int | None = port
        self.metrics_address: str | None = None  # with --metrics-listen HOST:0, once started
        self.log_path = log_path
        self.allow_clock_override = allow_clock_override
        self.extra_args = extra_args
        self.env = dict(env or {})  # LOYALTY_* variables for the server (the caller's are dropped)
        self.credentials = credentials  # for the tests' own channel, when the server is TLS
        self.cwd = cwd  # the source tree `-m server.main` runs from (another checkout, say)
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None

    @property
    def address(self) -> str:
        assert self.port is not None, "the server has not started yet"
        return f"127.0.0.1:{self.port}"

    def start(self, *, wait_serving: bool = True) -> "ServerProcess":
        args = [
            sys.executable, "-m", "server.main",
            "--listen", f"{self.host}:{self.port or 0}",
            "--database-url", self.database_url,
            "--db-pool-size", "8",
            "--grace-seconds", "2",
            *self.extra_args,
        ]  # fmt: skip
        if self.allow_clock_override:
            args.append("--allow-clock-override")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
        env.update(self.env)
        with self.log_path.open("ab") as log:
            logged_before = log.tell()
            self.process = subprocess.Popen(args, cwd=self.cwd, env=env, stdout=log, stderr=log)
        self._read_addresses(logged_before)
        if self.credentials is None:
            self.channel = grpc.insecure_channel(self.address)
        else:
            self.channel = grpc.secure_channel(self.address, self.credentials)
        if wait_serving:
            self.wait_for(health_pb2.HealthCheckResponse.SERVING)
        return self

    def _read_addresses(self, offset: int, *, timeout: float = 60) -> None:
        """Wait for this start's "serving on" line in the log (after `offset`) and read it."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            with self.log_path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            serving = SERVING_ON.search(text)
            if serving:
                self.port = int(serving[2]) or self.port
                metrics = METRICS_ON.search(text)
                self.metrics_address = metrics[1] if metrics else None
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server never said where it serves; see {self.log_path}")
            time.sleep(0.05)

    def health(self) -> int:
        assert self.channel is not None
        stub = health_pb2_grpc.HealthStub(self.channel)
        return stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status

    def wait_for(self, status: int, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}; see {self.log_path}")
            try:
                last = self.health()
                if last == status:
                    return
            except grpc.RpcError as exc:
                last = exc.code()
            time.sleep(0.1)
        raise TimeoutError(f"health never became {status} (last {last}); see {self.log_path}")

    def stubs(self) -> Stubs:
        assert self.channel is not None
        return Stubs(
            redemption=redemption_service_pb2_grpc.RedemptionServiceStub(self.channel),
            account=account_service_pb2_grpc.AccountServiceStub(self.channel),
            health=health_pb2_grpc.HealthStub(self.channel),
            reporting=reporting_service_pb2_grpc.ReportingServiceStub(self.channel),
        )

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def restart(self) -> "ServerProcess":
        self.stop()
        return self.start()


def run_expiry_job(
    database_url: str,
    as_of: datetime,
    *,
    timeout: float = 60,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
) -> str:
    """The expiry job as operators run it, up to `as_of`; returns what it printed.

    `python -m server.main expire --database-url URL --allow-clock-override --as-of ISO`
    """
    args = [
        sys.executable, "-m", "server.main", "expire",
        "--database-url", database_url,
        "--allow-clock-override",
        "--as-of", as_of.isoformat(),
    ]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    environment.update(env or {})
    done = subprocess.run(
        args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"expiry job failed ({done.returncode}): {done.stderr}"
    return done.stdout
