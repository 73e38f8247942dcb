"""Fifty clients on one customer for five seconds: no deadlock, no overspend (issue 8).

The customer holds 1,000 points. Each of 50 clients loops: apply 100 points to a
new order and, when that succeeds, return the whole order; every fourth round
it also reads the account and quotes. At most ten applies fit in the balance at
once, so most of the time the account is contended and short: an apply that
finds less than 100 points spendable must fail FAILED_PRECONDITION /
EXCEEDS_MAXIMUM naming the maximum it saw — and nothing else may fail.

Afterwards the balance is exactly 1,000 again, every successful apply has one
REDEMPTION entry and one REVERSAL, the ledger's running sum in commit order
never left 0..1,000 (nobody ever spent a point that was not there), no
transaction was retried for a conflict (the account lock orders them: no
deadlock), and the ledger reconciles. The latencies are printed, never asserted.
"""

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from loyalty.client import AsyncLoyaltyClient, FailedPreconditionError, LoyaltyError
from server.store.schema import ledger_entries
from tests.integration.common import PROGRAM, Ids, fetch
from tests.integration.invariants import check_invariants
from tests.reliability.load import (
    assert_reconciles,
    client_config,
    error_name,
    flow_cart,
    metric,
    scrape,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)

AS_OF = datetime(2032, 8, 8, 8, 0, tzinfo=UTC)
CLIENTS = 50
SECONDS = 5.0
BALANCE = 1_000
SPEND = 100


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def test_fifty_clients_on_one_customer(
    db_url: str, backend: str, tmp_path: Path, measured: Callable[[str], None]
) -> None:
    customer = Ids(f"hot-{backend}").customer
    server = ServerProcess(
        db_url,
        log_path=tmp_path / "server.log",
        extra_args=("--metrics-listen", "127.0.0.1:0"),
    ).start()
    metrics_address = server.metrics_address
    assert metrics_address is not None
    try:
        before = scrape(metrics_address)
        result = asyncio.run(_hammer(server, customer))
        after = scrape(metrics_address)
    finally:
        server.stop()
    latencies, outcomes, unexpected, seen, final = result

    assert unexpected == [], unexpected[:5]
    applied = outcomes["apply OK"]
    assert applied > 0 and outcomes["reverse OK"] == applied, outcomes
    assert outcomes["apply FAILED_PRECONDITION EXCEEDS_MAXIMUM"] > 0, "the account was contended"
    assert final == BALANCE
    assert min(seen) >= 0 and max(seen) <= BALANCE

    e = ledger_entries.c
    entries = fetch(
        db_url, select(e.kind, e.points).where(e.customer_id == customer).order_by(e.entry_id)
    )
    kinds = Counter(kind for kind, _ in entries)
    assert kinds == {"GRANT": 1, "REDEMPTION": applied, "REVERSAL": applied}, kinds
    running, low, high = 0, BALANCE, 0
    for _, points in entries:
        running += points
        low, high = min(low, running), max(high, running)
    # Entry ids are taken under the account lock: their order is the order of the commits.
    assert low >= 0 and high == BALANCE and running == BALANCE, (low, high, running)
    retried = metric(after, "loyalty_database_retries_total", kind="conflict") - metric(
        before, "loyalty_database_retries_total", kind="conflict"
    )
    assert retried == 0, "one lock per account: no conflict to retry, no deadlock"
    check_invariants(db_url, AS_OF)
    assert_reconciles(db_url, AS_OF)

    mutations = latencies["apply"] + latencies["reverse"]
    reads = latencies["read"]
    rate = len(mutations) / SECONDS
    measured(
        f"hot account ({backend}): {CLIENTS} clients on one customer for {SECONDS:.0f} s: "
        f"{len(mutations)} mutations ({rate:.0f}/s; {applied} applied and returned, "
        f"{outcomes['apply FAILED_PRECONDITION EXCEEDS_MAXIMUM']} refused EXCEEDS_MAXIMUM), "
        f"{len(reads)} reads; mutation latency p50 {percentile(mutations, 50) * 1000:.1f} ms, "
        f"p99 {percentile(mutations, 99) * 1000:.1f} ms; read p99 "
        f"{percentile(reads, 99) * 1000:.1f} ms; lowest running balance {low}"
    )


async def _hammer(
    server: ServerProcess, customer: str
) -> tuple[dict[str, list[float]], Counter[str], list[str], list[int], int]:
    clients = [AsyncLoyaltyClient(config=client_config(server.address)) for _ in range(10)]
    latencies: dict[str, list[float]] = {"apply": [], "reverse": [], "read": []}
    outcomes: Counter[str] = Counter()
    unexpected: list[str] = []
    seen: list[int] = []
    basket = flow_cart()

    async def timed(kind: str, call: Callable[[], object]) -> object:
        start = time.perf_counter()
        try:
            return await call()  # type: ignore[misc]
        finally:
            latencies[kind].append(time.perf_counter() - start)

    async def one_client(index: int, stop_at: float) -> None:
        client = clients[index % len(clients)]
        n = 0
        while time.monotonic() < stop_at:
            order = f"{customer}-c{index}-o{n}"
            try:
                applied = await timed(
                    "apply",
                    lambda order=order: client.apply_redemption(
                        program_id=PROGRAM, customer_id=customer, order_id=order, cart=basket,
                        points=SPEND, request_id=f"{order}-apply", as_of=AS_OF,
                    ),
                )  # fmt: skip
                outcomes["apply OK"] += 1
                seen.append(applied.balance_after)  # type: ignore[attr-defined]
                returned = await timed(
                    "reverse",
                    lambda order=order: client.reverse_redemption(
                        program_id=PROGRAM, order_id=order, request_id=f"{order}-return",
                        as_of=AS_OF,
                    ),
                )  # fmt: skip
                assert returned.points_returned == SPEND, returned  # type: ignore[attr-defined]
                outcomes["reverse OK"] += 1
                seen.append(returned.balance_after)  # type: ignore[attr-defined]
            except FailedPreconditionError as error:
                outcomes[f"apply {error_name(error)}"] += 1
                # Refused only when fewer than 100 points were spendable at that moment.
                if error.reason != "EXCEEDS_MAXIMUM" or int(error.metadata["maximum"]) >= SPEND:
                    unexpected.append(f"{order}: {error_name(error)} {error.metadata}")
            except LoyaltyError as error:
                unexpected.append(f"{order}: {error_name(error)} {error}")
            if n % 4 == 0:
                try:
                    account = await timed(
                        "read",
                        lambda: client.get_account(
                            program_id=PROGRAM, customer_id=customer, as_of=AS_OF
                        ),
                    )
                    seen.append(account.spendable_points)  # type: ignore[attr-defined]
                    await timed(
                        "read",
                        lambda: client.quote_redemption(
                            program_id=PROGRAM, customer_id=customer, cart=basket, as_of=AS_OF
                        ),
                    )
                except LoyaltyError as error:
                    unexpected.append(f"read: {error_name(error)} {error}")
            n += 1

    try:
        await clients[0].grant_points(
            program_id=PROGRAM, customer_id=customer, points=BALANCE, source="loyalty",
            request_id=f"{customer}-grant", as_of=AS_OF,
        )  # fmt: skip
        stop_at = time.monotonic() + SECONDS
        await asyncio.gather(*(one_client(i, stop_at) for i in range(CLIENTS)))
        final = await clients[0].get_account(program_id=PROGRAM, customer_id=customer, as_of=AS_OF)
    finally:
        for client in clients:
            await client.close()
    return latencies, outcomes, unexpected, seen, final.spendable_points
