"""PostgreSQL misbehaving under a running server (issue 8, docs/rules.md §7 and §9).

* restarted under load: calls fail UNAVAILABLE while it is down, health says
  NOT_SERVING, the same server process serves again by itself, and the clients'
  retries (same request ids) converge to exactly one effect per call;
* the server's connections killed (`pg_terminate_backend`) under load: the same;
* an account row locked by another session: calls on it end DEADLINE_EXCEEDED
  at their deadline without leaving a server thread queued behind the lock
  (other accounts are still served), or ABORTED when the lock outlasts
  `--db-lock-timeout`; nothing half-done is left, and a retry with the same
  request id then makes exactly one effect;
* serialization failures and deadlocks (injected by a trigger) are retried
  inside the server a bounded number of times, then ABORTED, and the
  `loyalty_database_{retries,errors}_total` counters say so.

Every test runs on its own database of a throwaway cluster (never the shared
one on 5432, which other tests use): tests/support/throwaway_cluster.py.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from grpc_health.v1 import health_pb2
from sqlalchemy import func, select

from loyalty.client import (
    AbortedError,
    AsyncLoyaltyClient,
    DeadlineExceededError,
    LoyaltyClient,
)
from server.store.schema import idempotency_keys, ledger_entries, redemptions
from tests.integration.common import PROGRAM, Ids, cart, fetch, fire_together
from tests.integration.invariants import check_invariants
from tests.reliability.load import (
    Stats,
    assert_reconciles,
    check_exactly_once,
    client_config,
    expected_balance,
    flows_until,
    grant_first,
    metric,
    scrape,
)
from tests.support.polling import until, wait_until
from tests.support.server import ServerProcess
from tests.support.throwaway_cluster import ThrowawayCluster, throwaway_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

AS_OF = datetime(2032, 5, 5, 9, 0, tzinfo=UTC)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GRANT = 100_000
LOAD = 100  # answers before a fault, and again after it, so that it meets a loaded server
BASKET = cart(("line-1", 1, 2_000_000))  # 20,000 RUB: at most 600 points


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayCluster]:
    with throwaway_cluster() as started:
        yield started


def _database(cluster: ThrowawayCluster, label: str) -> str:
    return cluster.create_database(f"{label}_{uuid.uuid4().hex[:12]}")


# ---- load ----------------------------------------------------------------------------


def _run_load(
    server: ServerProcess,
    customers: list[str],
    stats: Stats,
    chaos: Callable[[], object],
    *,
    per_customer: int = 5,
) -> None:
    """Order flows on every customer; `chaos` (a blocking function, run in a thread) starts
    once LOAD answers have come back, and the load ends LOAD answers after it returned."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        clients = [AsyncLoyaltyClient(config=client_config(server.address)) for _ in range(2)]
        done = [False]

        async def run_chaos() -> None:
            await until(lambda: stats.answers >= LOAD, what="the load to get going")
            await loop.run_in_executor(None, chaos)
            recovered = stats.answers
            await until(lambda: stats.answers >= recovered + LOAD, what="load after the fault")
            done[0] = True

        try:
            await grant_first(clients[0], customers, points=GRANT, as_of=AS_OF)
            await asyncio.gather(
                run_chaos(),
                flows_until(
                    clients, stats, customers=customers, per_customer=per_customer, as_of=AS_OF,
                    keep_going=lambda: not done[0], give_up_at=time.monotonic() + 90,
                ),
            )  # fmt: skip
        finally:
            for client in clients:
                await client.close()

    asyncio.run(main())


def _converged(url: str, server: ServerProcess, customers: list[str], stats: Stats) -> None:
    assert stats.flows_done == stats.flows_started > 0
    check_exactly_once(url, stats, customers)
    with LoyaltyClient(config=client_config(server.address)) as client:
        balances = {
            c: client.get_account(program_id=PROGRAM, customer_id=c, as_of=AS_OF).spendable_points
            for c in customers
        }
    assert balances == {c: expected_balance(stats, c, GRANT) for c in customers}


def test_postgres_restarted_under_load(
    cluster: ThrowawayCluster, tmp_path: Path, measured: Callable[[str], None]
) -> None:
    url = _database(cluster, "restart")
    ids = Ids("pg-restart")
    customers = [f"{ids.customer}-{n}" for n in range(10)]
    server = ServerProcess(url, log_path=tmp_path / "server.log").start()
    assert server.process is not None
    pid = server.process.pid
    seen: list[int] = []
    stats = Stats()

    def restart() -> None:
        cluster.stop("immediate")  # a crash: no clean shutdown of the sessions

        def outage_seen() -> bool:
            seen.append(server.health())
            return NOT_SERVING in seen and bool(stats.retried)

        # down until health said NOT_SERVING and the clients met the outage
        wait_until(outage_seen, what="NOT_SERVING and the clients' retries", timeout=30)
        cluster.start()
        server.wait_for(SERVING, timeout=30)

    try:
        _run_load(server, customers, stats, restart)
        assert server.process is not None and server.process.pid == pid, "served again itself"
        assert {name.split()[1] for name in stats.retried} <= {"UNAVAILABLE"}, stats.retried
        _converged(url, server, customers, stats)
    finally:
        server.stop()
    check_invariants(url, AS_OF)
    reconciled = assert_reconciles(url, AS_OF)
    measured(
        f"PostgreSQL restarted under load: {seen.count(NOT_SERVING)} NOT_SERVING health checks "
        f"while down; {stats.describe()}; {reconciled}"
    )


def test_server_connections_terminated_under_load(
    cluster: ThrowawayCluster, tmp_path: Path, measured: Callable[[str], None]
) -> None:
    name = f"terminate_{uuid.uuid4().hex[:12]}"
    url = cluster.create_database(name)
    ids = Ids("pg-terminate")
    customers = [f"{ids.customer}-{n}" for n in range(10)]
    server = ServerProcess(url, log_path=tmp_path / "server.log").start()
    terminated: list[int] = []
    stats = Stats()

    def terminate_all(rounds: int = 4) -> None:
        killed: set[int] = set()  # a killed backend may still be listed while it exits
        with psycopg.connect(cluster.url(), autocommit=True) as admin:

            def alive() -> list[int]:
                rows = admin.execute(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                ).fetchall()
                return [pid for (pid,) in rows if pid not in killed]

            def terminate(served: int) -> bool:
                """Terminate the server's connections opened since the last round, once it
                has answered since (an answer may have been on its way back when that round
                ran, and the server may close a fresh connection itself: then try again)."""
                if stats.answers <= served:
                    return False
                done = admin.execute(
                    "SELECT pid FROM unnest(%s::int[]) AS pid WHERE pg_terminate_backend(pid)",
                    (alive(),),
                ).fetchall()
                killed.update(pid for (pid,) in done)
                if done:
                    terminated.append(len(done))
                return bool(done)

            for _ in range(rounds):
                served = stats.answers
                wait_until(
                    lambda served=served: terminate(served),
                    what="a server connection to terminate after an answer",
                )

    try:
        _run_load(server, customers, stats, terminate_all)
        assert len(terminated) == 4 and all(terminated), terminated  # 4 rounds, each killed some
        assert {name.split()[1] for name in stats.retried} <= {"UNAVAILABLE"}, stats.retried
        _converged(url, server, customers, stats)
        assert server.health() == SERVING
    finally:
        server.stop()
    check_invariants(url, AS_OF)
    reconciled = assert_reconciles(url, AS_OF)
    measured(
        f"pg_terminate_backend under load: {sum(terminated)} server connections in "
        f"{len(terminated)} rounds; {stats.describe()}; {reconciled}"
    )


# ---- a locked account ----------------------------------------------------------------

LOCK_TIMEOUT = 1.5  # the server's --db-lock-timeout here


@pytest.fixture(scope="module")
def locking(
    cluster: ThrowawayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str, str]]:
    """A server (8 worker threads, lock timeout 1.5 s, metrics) on its own database."""
    url = _database(cluster, "locking")
    server = ServerProcess(
        url,
        log_path=tmp_path_factory.mktemp("locking") / "server.log",
        extra_args=("--db-lock-timeout", str(LOCK_TIMEOUT), "--metrics-listen", "127.0.0.1:0"),
    ).start()
    assert server.metrics_address is not None
    yield server, url, server.metrics_address
    server.stop()


class RowLock:
    """Another session holding an account's row lock (as a slow transaction would)."""

    def __init__(self, url: str, customer: str) -> None:
        self.session = psycopg.connect(url)
        found = self.session.execute(
            "SELECT 1 FROM accounts WHERE program_id = %s AND customer_id = %s FOR UPDATE",
            (PROGRAM, customer),
        ).fetchone()
        assert found is not None, "the account must exist to be locked"

    def release(self) -> None:
        self.session.rollback()
        self.session.close()


def _waiting_on_locks(url: str) -> int:
    """Server sessions of the database waiting for a lock right now."""
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _effects(url: str, customer: str) -> tuple[int, int, int]:
    """(redemptions, REDEMPTION entries, claimed request ids) of the customer."""
    r, e, k = redemptions.c, ledger_entries.c, idempotency_keys.c
    return (
        int(fetch(url, select(func.count()).where(r.customer_id == customer))[0][0]),
        int(
            fetch(
                url,
                select(func.count()).where(e.customer_id == customer, e.kind == "REDEMPTION"),
            )[0][0]
        ),
        int(fetch(url, select(func.count()).where(k.request_id.like(f"{customer}-%")))[0][0]),
    )


def _access_statuses(server: ServerProcess, request_id: str) -> list[str]:
    statuses = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith("{") and f'"{request_id}"' in line:
            record = json.loads(line)
            if record.get("logger") == "loyalty.access":
                statuses.append(record["status"])
    return statuses


def test_a_locked_account_times_out_at_the_deadline_and_frees_the_thread(
    locking: tuple[ServerProcess, str, str], measured: Callable[[str], None]
) -> None:
    server, url, metrics_address = locking
    ids = Ids("locked")
    hot, other = f"{ids.customer}-hot", f"{ids.customer}-other"
    with LoyaltyClient(config=client_config(server.address, timeout=10)) as client:
        for customer in (hot, other):
            client.grant_points(
                program_id=PROGRAM, customer_id=customer, points=1_000, source="loyalty",
                request_id=f"{customer}-grant", as_of=AS_OF,
            )  # fmt: skip
    before = scrape(metrics_address)

    def apply(client: LoyaltyClient, customer: str, n: object) -> int:
        return client.apply_redemption(
            program_id=PROGRAM, customer_id=customer, order_id=f"{customer}-o{n}", cart=BASKET,
            points=10, request_id=f"{customer}-o{n}-apply", as_of=AS_OF,
        ).balance_after  # fmt: skip

    lock = RowLock(url, hot)
    try:
        short = LoyaltyClient(config=client_config(server.address, timeout=0.8))
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            apply(short, hot, "first")
        first_wait = time.monotonic() - started
        # Twice as many calls as the server has worker threads, all on the locked account.
        outcomes = fire_together([lambda n=n: _deadline(short, hot, n, apply) for n in range(16)])
        assert [o.value for o in outcomes] == ["DEADLINE_EXCEEDED"] * 16
        short.close()
        # No server thread is left queued behind the lock: another account is served at
        # once, though the lock is still held and 17 calls on it were abandoned.
        with LoyaltyClient(config=client_config(server.address, timeout=5)) as client:
            assert apply(client, other, 1) == 990
        wait_until(lambda: _waiting_on_locks(url) == 0, what="no server session on the lock")
        assert server.health() == SERVING, "a slow account is not an unreachable database"
        assert _effects(url, hot) == (0, 0, 1), "nothing of the abandoned calls was written"
    finally:
        lock.release()

    # The call counts (and is logged) as what the caller saw, not OK.
    assert _access_statuses(server, f"{hot}-ofirst-apply") == ["DEADLINE_EXCEEDED"]
    moved = metric(scrape(metrics_address), "loyalty_database_errors_total", kind="deadline")
    moved -= metric(before, "loyalty_database_errors_total", kind="deadline")
    assert 1 <= moved <= 17, moved

    # The same request id again, the lock gone: one effect, and a replay of it.
    with LoyaltyClient(config=client_config(server.address, timeout=10)) as client:
        assert apply(client, hot, "first") == 990
        assert apply(client, hot, "first") == 990
    assert _effects(url, hot) == (1, 1, 2)
    check_invariants(url, AS_OF)
    measured(
        f"row lock held by another session: 17 calls DEADLINE_EXCEEDED (first after "
        f"{first_wait:.2f} s of a 0.8 s deadline), {moved:.0f} server transactions stopped at "
        "the deadline, 0 sessions left waiting; retried: 1 effect"
    )


def _deadline(
    client: LoyaltyClient, customer: str, n: int, apply: Callable[[LoyaltyClient, str, object], int]
) -> str:
    try:
        apply(client, customer, n)
    except DeadlineExceededError as error:
        return error.code.name
    return "OK"


def test_a_lock_held_past_the_lock_timeout_is_aborted_then_retried_once(
    locking: tuple[ServerProcess, str, str],
) -> None:
    server, url, metrics_address = locking
    ids = Ids("lock-timeout")
    customer = ids.customer
    with LoyaltyClient(config=client_config(server.address, timeout=10)) as client:
        client.grant_points(
            program_id=PROGRAM, customer_id=customer, points=1_000, source="loyalty",
            request_id=f"{customer}-grant", as_of=AS_OF,
        )  # fmt: skip
        before = scrape(metrics_address)
        request = {
            "program_id": PROGRAM, "customer_id": customer, "order_id": f"{customer}-o1",
            "cart": BASKET, "points": 25, "request_id": f"{customer}-o1-apply", "as_of": AS_OF,
        }  # fmt: skip
        lock = RowLock(url, customer)
        try:
            # A 10 s deadline, but the lock wait ends at the 1.5 s lock timeout.
            with pytest.raises(AbortedError) as raised:
                client.apply_redemption(**request)  # type: ignore[arg-type]
            assert raised.value.reason == "CONCURRENT_UPDATE"
            assert _effects(url, customer) == (0, 0, 1)
        finally:
            lock.release()
        after = scrape(metrics_address)
        assert (
            metric(after, "loyalty_database_errors_total", kind="lock_timeout")
            - metric(before, "loyalty_database_errors_total", kind="lock_timeout")
            == 1
        ), "one lock timeout, not retried"
        first = client.apply_redemption(**request)  # type: ignore[arg-type]
        again = client.apply_redemption(**request)  # type: ignore[arg-type]
    assert first == again and first.balance_after == 975
    assert _effects(url, customer) == (1, 1, 2)
    check_invariants(url, AS_OF)


# ---- serialization failures and deadlocks ------------------------------------------------

FAULT_TRIGGER = """
CREATE TABLE fault_plan (customer_id text PRIMARY KEY, sqlstate text NOT NULL,
                         failures int NOT NULL, counter text NOT NULL);
CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  plan fault_plan;
BEGIN
  SELECT * INTO plan FROM fault_plan WHERE customer_id = NEW.customer_id;
  -- nextval is not rolled back with the failed transaction: it counts attempts.
  IF FOUND AND nextval(plan.counter::regclass) <= plan.failures THEN
    RAISE EXCEPTION 'injected fault %', plan.sqlstate USING ERRCODE = plan.sqlstate;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER inject_fault BEFORE INSERT ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION inject_fault();
"""


def _plan_faults(url: str, customer: str, sqlstate: str, failures: int) -> str:
    counter = f"attempts_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SEQUENCE {counter}")
        admin.execute(
            "INSERT INTO fault_plan VALUES (%s, %s, %s, %s)",
            (customer, sqlstate, failures, counter),
        )
    return counter


def _attempts(url: str, counter: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {counter}"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("sqlstate", "failures", "attempts", "outcome"),
    [
        ("40001", 2, 3, "OK"),  # serialization failure, twice: retried, then done
        ("40P01", 4, 5, "OK"),  # deadlock detected, 4 times: the 5th and last attempt works
        ("40001", 5, 5, "ABORTED"),  # every attempt fails: ABORTED after 5
        ("40P01", 1_000, 5, "ABORTED"),
    ],
    ids=["serialization-2", "deadlock-4", "serialization-5", "deadlock-always"],
)
def test_conflicts_are_retried_a_bounded_number_of_times_then_aborted(
    locking: tuple[ServerProcess, str, str],
    sqlstate: str,
    failures: int,
    attempts: int,
    outcome: str,
) -> None:
    server, url, metrics_address = locking
    with psycopg.connect(url, autocommit=True) as admin:
        exists = admin.execute("SELECT to_regclass('fault_plan') IS NOT NULL").fetchone()
        if exists is not None and not exists[0]:
            admin.execute(FAULT_TRIGGER)
    customer = Ids(f"fault-{sqlstate}-{failures}").customer
    counter = _plan_faults(url, customer, sqlstate, failures)
    before = scrape(metrics_address)
    grant = {
        "program_id": PROGRAM, "customer_id": customer, "points": 70, "source": "loyalty",
        "request_id": f"{customer}-grant", "as_of": AS_OF,
    }  # fmt: skip
    with LoyaltyClient(config=client_config(server.address, timeout=10)) as client:
        if outcome == "OK":
            assert client.grant_points(**grant).balance_after == 70  # type: ignore[arg-type]
        else:
            with pytest.raises(AbortedError) as raised:
                client.grant_points(**grant)  # type: ignore[arg-type]
            assert raised.value.reason == "CONCURRENT_UPDATE"
        assert _attempts(url, counter) == attempts
        after = scrape(metrics_address)

        def moved(name: str, kind: str) -> float:
            return metric(after, name, kind=kind) - metric(before, name, kind=kind)

        assert moved("loyalty_database_retries_total", "conflict") == attempts - 1
        assert moved("loyalty_database_errors_total", "conflict") == (outcome == "ABORTED")
        e = ledger_entries.c
        written = fetch(url, select(func.count()).where(e.customer_id == customer))[0][0]
        assert written == (outcome == "OK"), "each failed attempt rolled back whole"
        if outcome == "ABORTED":
            # Once the conflicts stop, the same request id makes the one effect.
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("DELETE FROM fault_plan WHERE customer_id = %s", (customer,))
            assert client.grant_points(**grant).balance_after == 70  # type: ignore[arg-type]
            assert client.grant_points(**grant).balance_after == 70  # type: ignore[arg-type]
            written = fetch(url, select(func.count()).where(e.customer_id == customer))[0][0]
            assert written == 1
