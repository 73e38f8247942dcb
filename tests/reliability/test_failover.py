"""A database failover under load (docs/rules.md §12): tests/reliability/failover_drill.py.

* **Synchronous replication** (`synchronous_standby_names`, `synchronous_commit
  = on`): every call answered OK before the kill is on the new primary exactly
  once (its request id claimed, its ledger entries there with the points the
  call moved), every flow completes with exactly one effect per call, balances
  are what the flows say, and `loyalty-server reconcile`, on the same multi-host
  URL, is clean.
* **A primary fenced read-only** (`default_transaction_read_only`, as a
  demotion or a failover manager's fence leaves the pooled connections): writes
  fail UNAVAILABLE (SQLSTATE 25006 drops the pool), never INTERNAL; health is
  NOT_SERVING until the database takes writes again, then SERVING, and the
  retried call takes effect once.

What asynchronous replication loses is measured by measure_async_failover.py
(`make failover-async`), outside `make test`. Each test prints what it measured;
each starts and removes its own clusters and fails under CI=true when it cannot.
"""

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from loyalty.client import LoyaltyClient, UnavailableError
from tests.integration.common import PROGRAM, Ids
from tests.reliability.failover_drill import (
    AS_OF,
    GRANT,
    NOT_SERVING,
    SERVING,
    found_once,
    new_customers,
    run_drill,
    serve_on_both,
)
from tests.reliability.load import (
    assert_reconciles,
    check_exactly_once,
    client_config,
    expected_balance,
)
from tests.support.server import ServerProcess
from tests.support.throwaway_cluster import ThrowawayCluster, replication_pair, throwaway_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]


def test_synchronous_failover_loses_no_answered_call(
    tmp_path: Path, measured: Callable[[str], None]
) -> None:
    customers = new_customers()
    with replication_pair(synchronous=True) as (primary, standby):
        server = serve_on_both(primary, standby, tmp_path)
        assert server.process is not None
        pid = server.process.pid
        try:
            stats, drill = run_drill(primary, standby, server, customers, tolerate_loss=False)
            assert server.process is not None and server.process.pid == pid, "no restart"
            with LoyaltyClient(config=client_config(server.address)) as client:
                balances = {
                    c: client.get_account(
                        program_id=PROGRAM, customer_id=c, as_of=AS_OF
                    ).spendable_points
                    for c in customers
                }
        finally:
            server.stop()
        new_primary = standby.url("failover")
        before = drill.answered_before_kill
        found = found_once(new_primary, before)
        assert found == set(before), f"lost: {sorted(set(before) - found)[:10]}"
        assert stats.flows_done == stats.flows_started > 0
        check_exactly_once(new_primary, stats, customers)
        assert balances == {c: expected_balance(stats, c, GRANT) for c in customers}
        # The operator's check, on the same multi-host URL the server used.
        reconciled = assert_reconciles(server.database_url, AS_OF)
    measured(
        f"failover, synchronous replication: {len(before)} calls answered OK before the kill, "
        f"{len(found)} found on the new primary, {len(set(before) - found)} lost; "
        f"{drill.timings()}; whole load: {stats.describe()}; {reconciled}"
    )


def _fence(cluster: ThrowawayCluster, *, read_only: bool) -> None:
    """Make every transaction of the cluster read-only (or writable again), sessions open
    included: what a failover manager's fence, or a demotion, leaves behind."""
    with psycopg.connect(cluster.url(), autocommit=True, connect_timeout=5) as admin:
        admin.execute("SET default_transaction_read_only = off")
        admin.execute(f"ALTER SYSTEM SET default_transaction_read_only = {read_only}")
        admin.execute("SELECT pg_reload_conf()")
    # pg_reload_conf() only signals the postmaster: wait until it has reloaded (a new session
    # sees the setting), by which time it has signalled every open session too, each of
    # which reloads before its next command. A call faster than that would otherwise race
    # the fence and find the primary still writable.
    wanted = "on" if read_only else "off"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with psycopg.connect(cluster.url(), autocommit=True, connect_timeout=5) as probe:
            row = probe.execute("SHOW default_transaction_read_only").fetchone()
        if row is not None and row[0] == wanted:
            return
        time.sleep(0.01)
    raise AssertionError(f"the fence never took effect: default_transaction_read_only != {wanted}")


def test_a_primary_fenced_read_only_is_not_serving_until_it_takes_writes_again(
    tmp_path: Path, measured: Callable[[str], None]
) -> None:
    customer = f"{Ids('fenced').customer}"

    def grant(client: LoyaltyClient, request_id: str) -> int:
        return client.grant_points(
            program_id=PROGRAM, customer_id=customer, points=1_000, source="loyalty",
            request_id=request_id, as_of=AS_OF,
        ).balance_after  # fmt: skip

    with throwaway_cluster() as cluster:
        # One host, no target_session_attrs: the server's own checks must notice.
        server = ServerProcess(
            cluster.create_database("fenced"), log_path=tmp_path / "server.log"
        ).start()
        try:
            with LoyaltyClient(config=client_config(server.address)) as client:
                assert grant(client, "fenced-1") == 1_000  # the pool holds connections now
                _fence(cluster, read_only=True)
                with pytest.raises(UnavailableError) as refused:
                    grant(client, "fenced-2")
                assert refused.value.reason == "DATABASE_UNAVAILABLE"
                server.wait_for(NOT_SERVING, timeout=30)
                fenced_at = time.monotonic()
                _fence(cluster, read_only=False)
                server.wait_for(SERVING, timeout=30)
                back = time.monotonic() - fenced_at
                assert grant(client, "fenced-2") == 2_000  # 1,000 + 1,000: once
                assert grant(client, "fenced-2") == 2_000  # a replay changes nothing
        finally:
            server.stop()
    measured(
        f"primary fenced read-only: UNAVAILABLE {refused.value.reason}, NOT_SERVING; "
        f"SERVING again {back:.2f} s after the fence was lifted"
    )
