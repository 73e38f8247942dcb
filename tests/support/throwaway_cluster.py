"""A PostgreSQL cluster of a test's own, to stop and start at will.

The shared PostgreSQL (127.0.0.1:5432) is used by every other test and must
never be stopped. Tests that need the database to go away under a running
server (outages, restarts, failover drills) start one of these instead:
`initdb` into a temporary directory, `pg_ctl start` on a free loopback port,
trust authentication. PostgreSQL cannot bind port 0 and say which it got, so a
port taken between choosing it and the first start is retried with another.

As root, PostgreSQL refuses to run, so `initdb` and `pg_ctl` run as the
`postgres` OS user (`runuser -u postgres --`) and the directory is owned by
it. Not as root, they run as the current user.

Binaries: `LOYALTY_TEST_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`,
else `initdb` on PATH. If the cluster cannot be started, `throwaway_cluster()`
fails the test under CI=true and skips it elsewhere (tests/support/prerequisites.py).
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.support.prerequisites import missing
from tests.support.server import free_port

STOP_MODES = ("smart", "fast", "immediate")


class ClusterUnavailable(RuntimeError):
    """The throwaway cluster could not be created or started."""


def _bindir() -> Path:
    configured = os.environ.get("LOYALTY_TEST_PG_BINDIR")
    if configured:
        return Path(configured)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ClusterUnavailable("no initdb: set LOYALTY_TEST_PG_BINDIR or install PostgreSQL")


class ThrowawayCluster:
    """One PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1."""

    def __init__(self, *, port: int | None = None) -> None:
        self.bindir = _bindir()
        self.port = port or free_port()
        self.port_fixed = port is not None  # else the first start may move to another port
        self.started = False
        self.as_root = os.geteuid() == 0
        self.directory = Path(tempfile.mkdtemp(prefix="loyalty-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        if self.as_root:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ClusterUnavailable(
                    "running as root, but there is no `postgres` user"
                ) from exc
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        self.initialized = False

    # ---- commands ------------------------------------------------------------------

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ClusterUnavailable(
                f"{tool} {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n{tail}"
            )

    def init(self) -> "ThrowawayCluster":
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8", "--locale", "C",
        )  # fmt: skip
        self.initialized = True
        return self

    def start(self, *, timeout: float = 60) -> "ThrowawayCluster":
        """Start (or start again) on the same port; returns once it accepts connections.

        Until the first start succeeds, a port someone else bound in the meantime is
        replaced by another free one (three tries).
        """
        if not self.initialized:
            self.init()
        for attempt in range(3):
            try:
                self._start(timeout=timeout)
            except ClusterUnavailable as exc:
                taken = "Address already in use" in str(exc)
                if self.started or self.port_fixed or not taken or attempt == 2:
                    raise
                self.port = free_port()
            else:
                self.started = True
                return self
        raise AssertionError("unreachable")

    def _start(self, *, timeout: float) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            # Only the OS-level fsync is skipped: WAL is still written at commit, so
            # a `-m immediate` stop (a crash) loses nothing committed.
            "-c fsync=off -c max_connections=60 -c shared_buffers=16MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(int(timeout)), "start",
            timeout=timeout + 10,
        )  # fmt: skip

    def stop(self, mode: str = "fast", *, timeout: float = 60) -> None:
        """`pg_ctl stop -m mode`: `immediate` is a crash, `fast` ends sessions cleanly."""
        if mode not in STOP_MODES:
            raise ValueError(mode)
        self._run(
            "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)), "stop",
            timeout=timeout + 10,
        )  # fmt: skip

    def is_running(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    # ---- databases -----------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database `name`; returns its URL."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    # ---- teardown ------------------------------------------------------------------

    def destroy(self) -> None:
        """Stop (immediately) if running and delete the directory."""
        if self.initialized and (self.data / "postmaster.pid").exists():
            with contextlib.suppress(ClusterUnavailable, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster(*, port: int | None = None) -> Iterator[ThrowawayCluster]:
    """A started throwaway cluster, destroyed afterwards.

    If it cannot be created or started the test fails under CI=true and is
    skipped elsewhere; errors after it started are ordinary test errors.
    """
    try:
        cluster = ThrowawayCluster(port=port)
    except ClusterUnavailable as exc:
        missing(f"cannot create a throwaway PostgreSQL cluster: {exc}")
    try:
        try:
            cluster.start()
        except (ClusterUnavailable, subprocess.TimeoutExpired, OSError) as exc:
            missing(f"cannot start a throwaway PostgreSQL cluster: {exc}")
        yield cluster
    finally:
        cluster.destroy()
