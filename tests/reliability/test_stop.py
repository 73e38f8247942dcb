"""SIGTERM: the server exits within its grace period and a second whatever the database is doing,
and a SIGTERM while `--workers` processes are being forked leaves none of them running.

What a stop took is measured and printed, never asserted: the tests only require the exit
to happen by a deadline far shorter than the blocked work would take.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import psutil
import psycopg
import pytest

from loyalty.v1 import account_service_pb2 as account_pb
from tests.e2e.builders import T0, TIMEOUT, new_id, ts
from tests.support.databases import fresh_postgres
from tests.support.server import ROOT, ServerProcess, free_port

GRACE = 2.0  # ServerProcess's --grace-seconds
DEADLINE = GRACE + 20  # generous: the row lock below is held for as long as the test runs


def grant(customer: str, points: int) -> account_pb.GrantPointsRequest:
    return account_pb.GrantPointsRequest(
        request_id=new_id("g"), program_id="stomatorg", customer_id=customer, points=points,
        source="loyalty", as_of=ts(T0),
    )  # fmt: skip


def waiting_on_locks(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as probe:
        row = probe.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.postgres
def test_sigterm_while_a_call_waits_on_a_row_lock(
    tmp_path: Path, measured: Callable[[str], None]
) -> None:
    customer = new_id("c")
    with fresh_postgres() as url:
        # lock waits bounded only by the call's deadline (300 s): the database holds the call
        server = ServerProcess(url, log_path=tmp_path / "log",
                               extra_args=("--db-lock-timeout", "300")).start()  # fmt: skip
        stubs = server.stubs()
        stubs.account.GrantPoints(grant(customer, 100), timeout=TIMEOUT)
        locker = psycopg.connect(url)  # holds the account row until the end of the test
        locker.execute(
            "SELECT 1 FROM accounts WHERE program_id = 'stomatorg' AND customer_id = %s FOR UPDATE",
            (customer,),
        )
        with ThreadPoolExecutor(1) as caller:
            blocked = caller.submit(stubs.account.GrantPoints, grant(customer, 50), timeout=300)
            limit = time.monotonic() + 60
            while waiting_on_locks(url) == 0:
                assert time.monotonic() < limit, "the call never reached the lock"
                time.sleep(0.05)
            assert server.process is not None
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            code = server.process.wait(timeout=DEADLINE)  # the lock is still held
            took = time.monotonic() - started
            with pytest.raises(grpc.RpcError):
                blocked.result(timeout=30)
        assert code == 0
        assert "abandoning database work still running" in server.log_path.read_text()
        measured(f"SIGTERM with a call blocked on a row lock: exit {took:.2f} s (grace {GRACE} s)")
        locker.rollback()
        locker.close()
        with psycopg.connect(url) as check:  # the abandoned grant was rolled back
            remaining = check.execute(
                "SELECT coalesce(sum(remaining), 0) FROM buckets WHERE customer_id = %s",
                (customer,),
            ).fetchone()
        assert remaining == (100,)


# Run in a process of its own: the server's main with --workers 4, its os.fork wrapped so
# that the parent sends itself SIGTERM right after forking the second worker - a stop that
# arrives while the workers are being forked, every time.
STOP_WHILE_FORKING = """
import os, signal, sys
import server.main

real_fork, forked = os.fork, []

def fork():
    pid = real_fork()
    if pid:
        forked.append(pid)
        if len(forked) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
    return pid

os.fork = fork
sys.exit(server.main.main(sys.argv[1:]))
"""


def marked(mark: str) -> list[psutil.Process]:
    """Live processes whose environment carries `mark`."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("LOYALTY_TEST_MARK") == mark:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_sigterm_while_forking_workers_leaves_no_child(
    tmp_path: Path, measured: Callable[[str], None]
) -> None:
    mark = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env["LOYALTY_TEST_MARK"] = mark
    started = time.monotonic()
    parent = subprocess.Popen(
        [sys.executable, "-c", STOP_WHILE_FORKING, "--workers", "4",
         "--listen", f"127.0.0.1:{free_port()}",
         "--database-url", f"sqlite:///{tmp_path / 'db.sqlite3'}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        parent.wait(timeout=120)
        limit = time.monotonic() + 60
        while marked(mark) and time.monotonic() < limit:
            time.sleep(0.1)
        left = marked(mark)
    finally:
        for process in marked(mark):
            process.kill()
    assert left == []
    measured(f"SIGTERM while forking 4 workers: all gone {time.monotonic() - started:.2f} s")
