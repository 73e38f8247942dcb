"""SIGKILL the server under load, twice; the clients retry with the same request ids (issue 8).

200 order flows run at once on 20 customers (tests/reliability/load.py),
each step retried with its own fixed request id until the service answers.
The server is killed with SIGKILL once 100 or more applies and reversals are
in flight (and 200 answers have come back), restarted on the same database,
killed again as soon as it has answered a call (when every client is retrying
at once), and restarted; the load ends 200 answers later. Once every flow
has its answers: every order was debited exactly once, every return applied
exactly once, every balance is exactly what the flows say, and the ledger
reconciles — the test invariants and `loyalty-server reconcile` both.

SQLite runs it too: its WAL keeps everything committed through a killed process.
"""

import asyncio
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loyalty.client import AsyncLoyaltyClient
from tests.integration.common import PROGRAM, Ids
from tests.integration.invariants import check_invariants
from tests.reliability.load import (
    Stats,
    assert_reconciles,
    check_exactly_once,
    client_config,
    expected_balance,
    flows_until,
)
from tests.support.polling import until
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)

AS_OF = datetime(2032, 2, 2, 12, 0, tzinfo=UTC)
CUSTOMERS = 20
FLOWS_PER_CUSTOMER = 10  # 200 flows at once: about 200 calls in flight at any moment
GRANT = 100_000
IN_FLIGHT_AT_FIRST_KILL = 100
LOAD = 200  # answers before the first kill, and after the last restart


def test_sigkill_under_load_loses_and_duplicates_nothing(
    db_url: str, backend: str, tmp_path: Path, measured: Callable[[str], None]
) -> None:
    ids = Ids(f"crash-{backend}")
    customers = [f"{ids.customer}-{n}" for n in range(CUSTOMERS)]
    server = ServerProcess(db_url, log_path=tmp_path / "server.log").start()
    kills: list[int] = []  # calls in flight at each kill
    stats = Stats()
    try:
        started = time.monotonic()
        downtime = asyncio.run(_load_with_kills(server, customers, stats, kills))
        elapsed = time.monotonic() - started
        assert server.process is not None

        assert stats.flows_done == stats.flows_started > 0
        check_exactly_once(db_url, stats, customers)

        async def balances() -> dict[str, int]:
            async with AsyncLoyaltyClient(config=client_config(server.address)) as client:
                return {
                    c: (
                        await client.get_account(program_id=PROGRAM, customer_id=c, as_of=AS_OF)
                    ).spendable_points
                    for c in customers
                }

        assert asyncio.run(balances()) == {c: expected_balance(stats, c, GRANT) for c in customers}
    finally:
        server.stop()
    check_invariants(db_url, AS_OF)
    reconciled = assert_reconciles(db_url, AS_OF)
    measured(
        f"crash ({backend}): 2 SIGKILLs with {kills} calls in flight, down {downtime:.1f} s in "
        f"all, {elapsed:.1f} s; {stats.describe()}; {reconciled}"
    )


async def _load_with_kills(
    server: ServerProcess, customers: list[str], stats: Stats, kills: list[int]
) -> float:
    loop = asyncio.get_running_loop()
    stopping = [False]
    give_up_at = time.monotonic() + 120
    clients = [AsyncLoyaltyClient(config=client_config(server.address)) for _ in range(4)]
    downtime = 0.0

    async def grant(client: AsyncLoyaltyClient, customer: str) -> None:
        await client.grant_points(
            program_id=PROGRAM, customer_id=customer, points=GRANT, source="loyalty",
            reason="crash test", request_id=f"{customer}-grant", as_of=AS_OF,
        )  # fmt: skip

    async def kill_and_restart() -> float:
        kills.append(stats.in_flight)
        down = time.monotonic()
        await loop.run_in_executor(None, lambda: server.stop(sig=signal.SIGKILL))
        await loop.run_in_executor(None, server.start)
        return time.monotonic() - down

    async def chaos() -> None:
        nonlocal downtime
        await until(
            lambda: stats.answers >= LOAD and stats.in_flight >= IN_FLIGHT_AT_FIRST_KILL,
            what=f"{LOAD} answers and {IN_FLIGHT_AT_FIRST_KILL} calls in flight",
        )
        downtime += await kill_and_restart()
        answered = stats.answers
        await until(lambda: stats.answers > answered, what="an answer of the restarted server")
        downtime += await kill_and_restart()
        answered = stats.answers
        await until(lambda: stats.answers >= answered + LOAD, what="load on the last server")
        stopping[0] = True

    try:
        await asyncio.gather(*(grant(clients[0], c) for c in customers))
        await asyncio.gather(
            chaos(),
            flows_until(
                clients, stats, customers=customers, per_customer=FLOWS_PER_CUSTOMER,
                as_of=AS_OF, keep_going=lambda: not stopping[0],
                give_up_at=give_up_at,
            ),
        )  # fmt: skip
    finally:
        for client in clients:
            await client.close()
    return downtime
