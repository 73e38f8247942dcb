"""The failover drill (issue 18, docs/rules.md §12), shared by tests/reliability/test_failover.py
(synchronous replication, in `make test`) and measure_async_failover.py (asynchronous).

A real primary and a streaming standby of it (tests/support/throwaway_cluster.py),
a real server given both as one multi-host URL with `target_session_attrs=read-write`,
and clients sending order flows (apply, return, return) and grants, each call retried
with its own request id until answered. Then what a failover manager does: the primary
is killed (`pg_ctl stop -m immediate`), the server's health turns NOT_SERVING, the
standby is promoted, and the same server process finds it and turns SERVING again.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2
from sqlalchemy import func, select

from loyalty.client import AsyncLoyaltyClient, LoyaltyError
from server.store.schema import idempotency_keys, ledger_entries
from tests.integration.common import PROGRAM, Ids, fetch
from tests.reliability.load import (
    APPLY_POINTS,
    FIRST_RETURN,
    PARTIAL_EVERY,
    REST_RETURN,
    Stats,
    client_config,
    grant_first,
    grants_until,
    run_flow,
)
from tests.support.server import ServerProcess
from tests.support.throwaway_cluster import ThrowawayCluster

AS_OF = datetime(2032, 5, 5, 9, 0, tzinfo=UTC)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GRANT = 100_000  # each customer's first grant
TOP_UP = 7  # each grant of the load
CUSTOMERS = 6
FLOWS_PER_CUSTOMER = 3  # concurrent flow loops on each customer, besides its grant loop
CLIENTS = 3  # gRPC channels the loops share
ANSWERED_BEFORE_KILL = 80  # calls answered OK before the primary is killed
ANSWERED_AFTER = 40  # and after the server serves again, before the load winds down
DEADLINE = 120.0  # seconds: no call of the load stays unanswered longer

# What each call of the load moves, by the end of its request id:
# the apply takes 100 points, the returns give back floor(60 × 1/3) = 20 and the other 80.
EFFECT = {
    "-apply": ("REDEMPTION", -APPLY_POINTS),
    "-return-1": ("REVERSAL", FIRST_RETURN),
    "-return-2": ("REVERSAL", REST_RETURN),
}


@dataclass
class Drill:
    """What the failover drill saw, on `time.monotonic()`."""

    answered_before_kill: list[str] = field(default_factory=list)
    standby_behind: str = ""  # pg_stat_replication right before the kill
    killed_at: float = 0.0
    not_serving_at: float = 0.0
    promoted_at: float = 0.0
    serving_at: float = 0.0
    broken_flows: list[str] = field(default_factory=list)  # asynchronous: flows a loss broke

    def timings(self) -> str:
        return (
            f"standby behind at the kill: {self.standby_behind}; "
            f"NOT_SERVING {self.not_serving_at - self.killed_at:.2f} s after the kill; "
            f"promoted {self.promoted_at - self.killed_at:.2f} s after it; "
            f"SERVING again {self.serving_at - self.promoted_at:.2f} s after the promotion "
            f"({self.serving_at - self.killed_at:.2f} s after the kill)"
        )


def new_customers() -> list[str]:
    """The drill's customers, unique to one run."""
    ids = Ids("failover")
    return [f"{ids.customer}-{n}" for n in range(CUSTOMERS)]


def multi_host_url(primary: ThrowawayCluster, standby: ThrowawayCluster, database: str) -> str:
    """docs/rules.md §12's form: both servers, and only the one that takes writes will do."""
    return (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{database}"
        "?target_session_attrs=read-write"
    )


def wait_until(condition: Callable[[], bool], what: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never {what} within {timeout} s"
        time.sleep(0.02)


def _health(server: ServerProcess) -> int | None:
    """The server's health, or None when the check itself did not answer in time."""
    try:
        return server.health()
    except grpc.RpcError:
        return None


def _fail_over(
    primary: ThrowawayCluster,
    standby: ThrowawayCluster,
    server: ServerProcess,
    stats: Stats,
    drill: Drill,
    standby_away: int,
) -> None:
    """Kill the primary under load, see NOT_SERVING, promote the standby, see SERVING.

    With `standby_away` > 0 the standby is stopped first, and the primary killed once
    that many more calls were answered without it (a standby cut off by the network,
    or down): they exist only on the primary.
    """
    wait_until(lambda: len(stats.answered_ids) >= ANSWERED_BEFORE_KILL, "loaded", timeout=90)
    if standby_away:
        standby.stop("fast")
        answered = len(stats.answered_ids)
        wait_until(
            lambda: len(stats.answered_ids) >= answered + standby_away,
            "answered without the standby",
            timeout=60,
        )
        away = len(stats.answered_ids) - answered
        drill.standby_behind = f"stopped while {away} calls were answered"
    else:
        drill.standby_behind = _replication_lag(primary)
    drill.answered_before_kill = list(stats.answered_ids)
    drill.killed_at = time.monotonic()
    primary.stop("immediate")  # a crash: no checkpoint, no goodbye to the sessions
    wait_until(lambda: _health(server) == NOT_SERVING, "NOT_SERVING", timeout=30)
    drill.not_serving_at = time.monotonic()
    if standby_away:
        standby.start()  # a standby again, its primary gone
    standby.promote()
    drill.promoted_at = time.monotonic()
    server.wait_for(SERVING, timeout=30)
    drill.serving_at = time.monotonic()
    answered = len(stats.answered_ids)
    wait_until(
        lambda: len(stats.answered_ids) >= answered + ANSWERED_AFTER, "served again", timeout=60
    )


def _replication_lag(primary: ThrowawayCluster) -> str:
    """How far the standby's flushed WAL trails the primary's, in bytes and time."""
    with psycopg.connect(primary.url(), autocommit=True, connect_timeout=5) as admin:
        row = admin.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn), flush_lag "
            "FROM pg_stat_replication WHERE application_name = 'standby'"
        ).fetchone()
    assert row is not None, "the standby must be streaming"
    behind, lag = row
    return (
        f"{int(behind)} bytes of WAL, flush_lag {lag.total_seconds() * 1000 if lag else 0:.2f} ms"
    )


async def _flows(
    client: AsyncLoyaltyClient,
    stats: Stats,
    drill: Drill,
    *,
    customer: str,
    worker: int,
    keep_going: Callable[[], bool],
    tolerate_loss: bool,
) -> None:
    """Order flows one after another; with `tolerate_loss`, a flow whose earlier call the
    failover lost (a return of an apply the new primary never saw) is noted, not fatal."""
    n = 0
    while keep_going():
        order = f"{customer}-w{worker}-o{n}"
        try:
            await run_flow(
                client, stats, customer=customer, order=order, full=n % PARTIAL_EVERY != 0,
                as_of=AS_OF, give_up_at=time.monotonic() + DEADLINE,
            )  # fmt: skip
        except (LoyaltyError, AssertionError) as error:
            if not tolerate_loss:
                raise
            drill.broken_flows.append(f"{order}: {error}")
        n += 1


def run_drill(
    primary: ThrowawayCluster,
    standby: ThrowawayCluster,
    server: ServerProcess,
    customers: list[str],
    *,
    tolerate_loss: bool,
    standby_away: int = 0,
) -> tuple[Stats, Drill]:
    stats, drill = Stats(), Drill()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        clients = [AsyncLoyaltyClient(config=client_config(server.address)) for _ in range(CLIENTS)]
        done = [False]

        def keep_going() -> bool:
            return not done[0]

        async def failover() -> None:
            try:
                await loop.run_in_executor(
                    None, _fail_over, primary, standby, server, stats, drill, standby_away
                )
            finally:
                done[0] = True

        try:
            await grant_first(clients[0], customers, points=GRANT, as_of=AS_OF)
            loops = [
                _flows(
                    clients[(index + slot) % CLIENTS],
                    stats,
                    drill,
                    customer=customer,
                    worker=slot,
                    keep_going=keep_going,
                    tolerate_loss=tolerate_loss,
                )
                for index, customer in enumerate(customers)
                for slot in range(FLOWS_PER_CUSTOMER)
            ]
            grants = [
                grants_until(
                    clients[index % CLIENTS],
                    stats,
                    customer=customer,
                    points=TOP_UP,
                    as_of=AS_OF,
                    keep_going=keep_going,
                    give_up_at=time.monotonic() + DEADLINE,
                )
                for index, customer in enumerate(customers)
            ]
            await asyncio.gather(failover(), *loops, *grants)
        finally:
            for client in clients:
                await client.close()

    asyncio.run(main())
    return stats, drill


def _effect(request_id: str) -> tuple[str, int]:
    """The ledger kind and the points the call with this request id moved."""
    if request_id.endswith("-grant"):
        return "GRANT", GRANT
    for suffix, effect in EFFECT.items():
        if request_id.endswith(suffix):
            return effect
    return "GRANT", TOP_UP  # `{customer}-g{n}`


def found_once(url: str, request_ids: list[str]) -> set[str]:
    """The request ids whose call is on the database at `url` exactly once: the id claimed
    with its answer stored, and the ledger entries it wrote summing to what it moved."""
    k, e = idempotency_keys.c, ledger_entries.c
    claimed = {
        row.request_id
        for row in fetch(
            url,
            select(k.request_id).where(
                k.program_id == PROGRAM, k.request_id.in_(request_ids), k.response.is_not(None)
            ),
        )
    }
    moved = {
        (row.request_id, row.kind): int(row.points)
        for row in fetch(
            url,
            select(e.request_id, e.kind, func.sum(e.points).label("points"))
            .where(e.program_id == PROGRAM, e.request_id.in_(request_ids))
            .group_by(e.request_id, e.kind),
        )
    }
    by_request: dict[str, dict[str, int]] = {}
    for (request_id, kind), points in moved.items():
        by_request.setdefault(request_id, {})[kind] = points
    return {
        request_id
        for request_id in claimed
        if by_request.get(request_id) == dict([_effect(request_id)])
    }


def serve_on_both(
    primary: ThrowawayCluster, standby: ThrowawayCluster, tmp_path: Path
) -> ServerProcess:
    primary.create_database("failover")  # replicated to the standby
    url = multi_host_url(primary, standby, "failover")
    return ServerProcess(url, log_path=tmp_path / "server.log").start()
