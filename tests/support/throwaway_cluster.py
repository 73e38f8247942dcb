"""A PostgreSQL cluster of a test's own, to stop and start at will.

The shared PostgreSQL (127.0.0.1:5432) is used by every other test and must
never be stopped. Tests that need the database to go away under a running
server (outages, restarts, failover drills) start one of these instead:
`initdb` into a temporary directory, `pg_ctl start` on a free loopback port,
trust authentication.

As root, PostgreSQL refuses to run, so `initdb` and `pg_ctl` run as the
`postgres` OS user (`runuser -u postgres --`) and the directory is owned by
it. Not as root, they run as the current user.

Binaries: `LOYALTY_TEST_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`,
else `initdb` on PATH. If the cluster cannot be started, `throwaway_cluster()`
fails the test under CI=true and skips it elsewhere.

`replication_pair()` starts a primary and a streaming standby of it
(`pg_basebackup -R`), synchronous or not, for failover drills: stop the
primary, `promote()` the standby. Ports: free ones, or the first free ones of
`LOYALTY_TEST_PG_PORTS` (`FIRST-LAST`) when set, so that helpers sharing a
machine can keep their clusters apart.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pytest

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


def cluster_port() -> int:
    """A free port: in `LOYALTY_TEST_PG_PORTS` (`FIRST-LAST`) when set."""
    configured = os.environ.get("LOYALTY_TEST_PG_PORTS")
    if not configured:
        return free_port()
    first, _, last = configured.partition("-")
    for port in range(int(first), int(last or first) + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ClusterUnavailable(f"no free port in LOYALTY_TEST_PG_PORTS={configured}")


class ThrowawayCluster:
    """One PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1.

    `settings` are passed to the server as `-c name=value` at every start.
    """

    def __init__(
        self, *, port: int | None = None, settings: Mapping[str, str] | None = None
    ) -> None:
        self.bindir = _bindir()
        self.port = port or cluster_port()
        self.settings = dict(settings or {})
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
        """Start (or start again) on the same port; returns once it accepts connections."""
        if not self.initialized:
            self.init()
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            # Only the OS-level fsync is skipped: WAL is still written at commit, so
            # a `-m immediate` stop (a crash) loses nothing committed.
            "-c fsync=off -c max_connections=60 -c shared_buffers=16MB"
        ) + "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(int(timeout)), "start",
            timeout=timeout + 10,
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast", *, timeout: float = 60) -> None:
        """`pg_ctl stop -m mode`: `immediate` is a crash, `fast` ends sessions cleanly."""
        if mode not in STOP_MODES:
            raise ValueError(mode)
        self._run(
            "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)), "stop",
            timeout=timeout + 10,
        )  # fmt: skip

    def promote(self, *, timeout: float = 60) -> None:
        """`pg_ctl promote`: a standby becomes a primary; returns once it takes writes."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-w", "-t", str(int(timeout)), "promote",
            timeout=timeout + 10,
        )  # fmt: skip

    def standby(self, *, name: str = "standby") -> "ThrowawayCluster":
        """A streaming standby of this running cluster, started: `pg_basebackup -R`.

        `name` is its `cluster_name`, which its WAL receiver reports as its
        `application_name`: what `synchronous_standby_names` matches.
        """
        # A lost primary is retried (and a promotion noticed) within 0.2 s, not 5 s.
        replica = ThrowawayCluster(
            settings={"cluster_name": name, "wal_retrieve_retry_interval": "200ms"}
        )
        try:
            replica._run(
                "pg_basebackup", "-D", str(replica.data), "-h", "127.0.0.1",
                "-p", str(self.port), "-U", "postgres", "-R", "-X", "stream", "--no-sync",
            )  # fmt: skip
            replica.initialized = True
            replica.start()
        except BaseException:
            replica.destroy()
            raise
        return replica

    def replication(self) -> dict[str, str]:
        """`application_name` → `sync_state` of the standbys streaming from this cluster."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin:
            rows = admin.execute(
                "SELECT application_name, sync_state FROM pg_stat_replication "
                "WHERE state = 'streaming'"
            ).fetchall()
        return {str(name): str(state) for name, state in rows}

    def set_synchronous(self, standby: str, *, timeout: float = 30) -> None:
        """Commits wait for `standby` (`synchronous_commit=on`: flushed there); returns once
        it is the synchronous standby."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{standby}'")
            admin.execute("ALTER SYSTEM SET synchronous_commit = 'on'")
            admin.execute("SELECT pg_reload_conf()")
        self.wait_replication(standby, "sync", timeout=timeout)

    def wait_replication(self, standby: str, sync_state: str, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (seen := self.replication()).get(standby) != sync_state:
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"{standby} never {sync_state!r}: {seen}")
            time.sleep(0.05)

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


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: this test must run)")
    pytest.skip(message)


@contextlib.contextmanager
def throwaway_cluster(*, port: int | None = None) -> Iterator[ThrowawayCluster]:
    """A started throwaway cluster, destroyed afterwards.

    If it cannot be created or started the test fails under CI=true and is
    skipped elsewhere; errors after it started are ordinary test errors.
    """
    try:
        cluster = ThrowawayCluster(port=port)
    except ClusterUnavailable as exc:
        _unavailable(f"cannot create a throwaway PostgreSQL cluster: {exc}")
        raise AssertionError("unreachable") from exc
    try:
        try:
            cluster.start()
        except (ClusterUnavailable, subprocess.TimeoutExpired, OSError) as exc:
            _unavailable(f"cannot start a throwaway PostgreSQL cluster: {exc}")
        yield cluster
    finally:
        cluster.destroy()


@contextlib.contextmanager
def replication_pair(*, synchronous: bool) -> Iterator[tuple[ThrowawayCluster, ThrowawayCluster]]:
    """A started primary and its streaming standby (named `standby`), destroyed afterwards.

    Synchronous: every commit waits until the standby has flushed its WAL.
    Failing to start them fails the test under CI=true and skips it elsewhere.
    """
    with throwaway_cluster() as primary:
        standby: ThrowawayCluster | None = None
        try:
            try:
                standby = primary.standby(name="standby")
                primary.wait_replication("standby", "async")
                if synchronous:
                    primary.set_synchronous("standby")
            except (ClusterUnavailable, subprocess.TimeoutExpired, OSError) as exc:
                _unavailable(f"cannot start a standby of a throwaway PostgreSQL cluster: {exc}")
            assert standby is not None
            yield primary, standby
        finally:
            if standby is not None:
                standby.destroy()
