"""A real `loyalty-server` process for end-to-end tests, and stubs to call it."""

import os
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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stubs:
    redemption: redemption_service_pb2_grpc.RedemptionServiceStub
    account: account_service_pb2_grpc.AccountServiceStub
    health: health_pb2_grpc.HealthStub
    reporting: reporting_service_pb2_grpc.ReportingServiceStub


class ServerProcess:
    """`python -m server.main` on a free port; started, stopped, killed and restarted at will."""

    def __init__(
        self,
        database_url: str,
        *,
        log_path: Path,
        allow_clock_override: bool = True,
        extra_args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.allow_clock_override = allow_clock_override
        self.extra_args = extra_args
        self.env = dict(env or {})  # LOYALTY_* variables for the server (the caller's are dropped)
        self.credentials = credentials  # for the tests' own channel, when the server is TLS
        self.cwd = cwd  # the source tree `-m server.main` runs from (another checkout, say)
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None

    def start(self, *, wait_serving: bool = True) -> "ServerProcess":
        args = [
            sys.executable, "-m", "server.main",
            "--listen", self.address,
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
            self.process = subprocess.Popen(args, cwd=self.cwd, env=env, stdout=log, stderr=log)
        if self.credentials is None:
            self.channel = grpc.insecure_channel(self.address)
        else:
            self.channel = grpc.secure_channel(self.address, self.credentials)
        if wait_serving:
            self.wait_for(health_pb2.HealthCheckResponse.SERVING)
        return self

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
