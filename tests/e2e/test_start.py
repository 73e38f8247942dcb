"""Starting the server as a newcomer does: a busy port, when "serving on" is said, text logs."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from loyalty.v1 import account_service_pb2 as account_pb
from tests.e2e.builders import TIMEOUT, new_id
from tests.support.server import ROOT, ServerProcess, free_port

CONSOLE_SCRIPT = Path(sys.executable).parent / "loyalty-server"  # what `make run` runs


def wait_for_text(path: Path, text: str, *, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text() if path.exists() else ""
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_a_busy_port_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", "GRPC_"))}
        env["LOYALTY_LISTEN"] = address  # as `LOYALTY_LISTEN=... make run` would
        done = subprocess.run(
            [str(CONSOLE_SCRIPT), "--database-url", f"sqlite:///{tmp_path / 'db.sqlite3'}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()  # no traceback, no gRPC core line
    assert (
        f"not starting: cannot listen on {address}: the address is in use by another process; "
        "choose another address with --listen or LOYALTY_LISTEN"
    ) in line


def test_serving_on_comes_after_the_schema_and_the_database(tmp_path: Path) -> None:
    server = ServerProcess(f"sqlite:///{tmp_path / 'db.sqlite3'}", log_path=tmp_path / "log")
    server.start()
    try:
        log = wait_for_text(server.log_path, "serving on")
        assert log.index("schema is at the newest revision") < log.index("serving on")
    finally:
        server.stop()


def test_no_serving_on_while_the_database_is_unreachable(tmp_path: Path) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/none"  # nothing listens there
    server = ServerProcess(nowhere, log_path=tmp_path / "log").start(wait_serving=False)
    try:
        server.wait_for(health_pb2.HealthCheckResponse.NOT_SERVING)
        log = wait_for_text(server.log_path, "database not ready")
        assert "listening on 127.0.0.1:" in log and "serving on" not in log
    finally:
        server.stop()


def test_the_text_log_keeps_every_field_of_the_access_line(tmp_path: Path) -> None:
    server = ServerProcess(
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        log_path=tmp_path / "log",
        extra_args=("--log-format", "text"),
    ).start()
    customer = new_id("c")
    try:
        server.stubs().account.GetAccount(
            account_pb.GetAccountRequest(program_id="stomatorg", customer_id=customer),
            timeout=TIMEOUT,
        )
        with contextlib.suppress(grpc.RpcError):  # NOT_FOUND: an unknown program
            server.stubs().account.GetAccount(
                account_pb.GetAccountRequest(program_id="nope", customer_id=customer),
                timeout=TIMEOUT,
            )
        log = wait_for_text(server.log_path, "status=NOT_FOUND")
    finally:
        server.stop()
    (ok,) = [line for line in log.splitlines() if "status=OK" in line]
    assert " loyalty.access: rpc method=GetAccount status=OK duration_ms=" in ok
    assert ok.endswith(f" program_id=stomatorg customer_id={customer}")
    assert "rpc method=GetAccount status=NOT_FOUND duration_ms=" in log
