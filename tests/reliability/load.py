"""Load for the reliability tests: order flows that retry until answered, and the checks after.

A *flow* is one order's life, each step a mutation with its own fixed
request id, retried with that same id until the service answers:

1. `ApplyRedemption`: 100 points on a cart of two lines (a: 3 units, b: 2
   units, 1,000 RUB each; base-tier cap 3 % = 150 points), split by largest
   remainder a = 60, b = 40;
2. `ReverseRedemption` of one unit of line a: floor(60 × 1 / 3) = 20 points back;
3. on two flows out of three, `ReverseRedemption` of the rest: 80 points back.

Whatever happens to the server or the database meanwhile, once every flow has
its answers each order must have been debited once (100), given back once per
reversal (20, then 80), and each customer's balance must be exactly what the
flows say: the grant less 80 for every flow that stopped after step 2.
"""

import asyncio
import functools
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select

from loyalty.client import (
    AbortedError,
    AsyncLoyaltyClient,
    DeadlineExceededError,
    LoyaltyError,
    UnavailableError,
)
from loyalty.client.channel import ChannelConfig
from loyalty.v1 import cart_pb2, redemption_pb2
from server.store.schema import idempotency_keys, ledger_entries, redemptions
from tests.integration.common import PROGRAM, fetch
from tests.support.server import ROOT

T = TypeVar("T")

APPLY_POINTS = 100
FIRST_RETURN = 20  # floor(60 × 1 / 3): one of line a's three units
REST_RETURN = 80
# Flows whose number is a multiple of this stop after the first return.
PARTIAL_EVERY = 3

# Answers that mean "not answered yet: try again with the same request id".
RETRIED = (UnavailableError, DeadlineExceededError, AbortedError)


def flow_cart() -> cart_pb2.Cart:
    return cart_pb2.Cart(
        currency="RUB",
        lines=[
            cart_pb2.CartLine(
                line_id=line_id,
                sku=f"sku-{line_id}",
                category="dental",
                kind=cart_pb2.LINE_KIND_GOODS,
                quantity=quantity,
                unit_price_minor=100_000,
            )
            for line_id, quantity in (("a", 3), ("b", 2))
        ],
    )


def client_config(target: str, *, timeout: float = 10.0) -> ChannelConfig:
    """The Python client's config, reconnecting quickly once a server is back."""
    return ChannelConfig(
        target=target,
        timeout=timeout,
        extra_options=(
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ),
    )


@dataclass
class Stats:
    """What the load saw: answers, the failures it retried, calls in flight."""

    answered: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    flows_started: int = 0
    flows_done: int = 0
    partial_flows: dict[str, int] = field(default_factory=Counter)  # customer → flows
    full_flows: dict[str, int] = field(default_factory=Counter)
    orders: list[tuple[str, str, bool]] = field(default_factory=list)  # customer, order, full
    grants: list[tuple[str, str, int]] = field(default_factory=list)  # customer, request, points
    answered_ids: list[str] = field(default_factory=list)  # request ids, as answered OK

    def describe(self) -> str:
        return (
            f"{self.flows_done} flows, {sum(self.answered.values())} answers "
            f"({dict(self.answered)}), retried {dict(self.retried)}"
        )


async def until_answered(
    stats: Stats,
    name: str,
    call: Callable[[], Awaitable[T]],
    *,
    give_up_at: float,
    request_id: str = "",
) -> T:
    """Call until the service answers; the same request (and request id) every time."""
    while True:
        stats.in_flight += 1
        try:
            answer = await call()
        except RETRIED as error:
            stats.retried[f"{name} {error.code.name}"] += 1
            if time.monotonic() > give_up_at:
                raise AssertionError(f"{name} still unanswered at the deadline: {error}") from error
            await asyncio.sleep(0.2)  # the client already backed off between its attempts
            continue
        finally:
            stats.in_flight -= 1
        stats.answered[name] += 1
        if request_id:
            stats.answered_ids.append(request_id)
        return answer


async def run_flow(
    client: AsyncLoyaltyClient,
    stats: Stats,
    *,
    customer: str,
    order: str,
    full: bool,
    as_of: datetime,
    give_up_at: float,
) -> None:
    stats.flows_started += 1
    basket = flow_cart()
    applied = await until_answered(
        stats,
        "apply",
        lambda: client.apply_redemption(
            program_id=PROGRAM,
            customer_id=customer,
            order_id=order,
            cart=basket,
            points=APPLY_POINTS,
            request_id=f"{order}-apply",
            as_of=as_of,
        ),
        give_up_at=give_up_at,
        request_id=f"{order}-apply",
    )
    assert applied.redemption.points == APPLY_POINTS, applied
    assert {a.line_id: a.points for a in applied.redemption.allocations} == {"a": 60, "b": 40}
    first = await until_answered(
        stats,
        "reverse",
        lambda: client.reverse_redemption(
            program_id=PROGRAM,
            order_id=order,
            lines={"a": 1},
            reason="return",
            request_id=f"{order}-return-1",
            as_of=as_of,
        ),
        give_up_at=give_up_at,
        request_id=f"{order}-return-1",
    )
    assert first.points_returned == FIRST_RETURN, first
    if full:
        rest = await until_answered(
            stats,
            "reverse",
            lambda: client.reverse_redemption(
                program_id=PROGRAM,
                order_id=order,
                reason="cancelled",
                request_id=f"{order}-return-2",
                as_of=as_of,
            ),
            give_up_at=give_up_at,
            request_id=f"{order}-return-2",
        )
        assert rest.points_returned == REST_RETURN, rest
        assert rest.redemption.state == redemption_pb2.REDEMPTION_STATE_REVERSED
    stats.orders.append((customer, order, full))
    (stats.full_flows if full else stats.partial_flows)[customer] += 1
    stats.flows_done += 1


async def flows_until(
    clients: list[AsyncLoyaltyClient],
    stats: Stats,
    *,
    customers: list[str],
    per_customer: int,
    as_of: datetime,
    keep_going: Callable[[], bool],
    give_up_at: float,
) -> None:
    """`per_customer` concurrent flow loops on each customer while `keep_going()`.

    A loop starts a new flow only while `keep_going()`; a flow once started
    runs to its end, so every order it touched ends with all its answers.
    """

    async def loop(worker: int, customer: str) -> None:
        client = clients[worker % len(clients)]
        n = 0
        while keep_going():
            order = f"{customer}-w{worker}-o{n}"
            await run_flow(
                client, stats, customer=customer, order=order, full=n % PARTIAL_EVERY != 0,
                as_of=as_of, give_up_at=give_up_at,
            )  # fmt: skip
            n += 1

    workers = [
        loop(index * per_customer + slot, customer)
        for index, customer in enumerate(customers)
        for slot in range(per_customer)
    ]
    await asyncio.gather(*workers)


async def grant_first(
    client: AsyncLoyaltyClient, customers: list[str], *, points: int, as_of: datetime
) -> None:
    """Each customer's first grant, request id `{customer}-grant`, before the load starts."""
    for customer in customers:
        await client.grant_points(
            program_id=PROGRAM, customer_id=customer, points=points, source="loyalty",
            request_id=f"{customer}-grant", as_of=as_of,
        )  # fmt: skip


async def grants_until(
    client: AsyncLoyaltyClient,
    stats: Stats,
    *,
    customer: str,
    points: int,
    as_of: datetime,
    keep_going: Callable[[], bool],
    give_up_at: float,
) -> None:
    """`GrantPoints` of `points` to `customer`, one after another, while `keep_going()`."""
    n = 0
    while keep_going():
        request_id = f"{customer}-g{n}"
        grant = functools.partial(
            client.grant_points, program_id=PROGRAM, customer_id=customer, points=points,
            source="loyalty", request_id=request_id, as_of=as_of,
        )  # fmt: skip
        await until_answered(stats, "grant", grant, give_up_at=give_up_at, request_id=request_id)
        stats.grants.append((customer, request_id, points))
        n += 1


def expected_balance(stats: Stats, customer: str, granted: int) -> int:
    """`granted` at the start, plus the load's grants, less 80 per flow that kept 80."""
    grants = sum(points for owner, _, points in stats.grants if owner == customer)
    return granted + grants - (APPLY_POINTS - FIRST_RETURN) * stats.partial_flows[customer]


def check_exactly_once(url: str, stats: Stats, customers: list[str]) -> None:
    """Every order debited once, every return and grant applied once, nothing else written."""
    e = ledger_entries.c
    granted = fetch(
        url,
        select(e.request_id, func.count(), func.sum(e.points))
        .where(e.customer_id.in_(customers), e.kind == "GRANT", e.request_id.not_like("%-grant"))
        .group_by(e.request_id),
    )
    assert {r: (int(n), int(p)) for r, n, p in granted} == {
        request_id: (1, points) for _, request_id, points in stats.grants
    }
    rows = fetch(
        url,
        select(e.order_id, e.kind, func.count(), func.sum(e.points))
        .where(e.customer_id.in_(customers), e.order_id.is_not(None))
        .group_by(e.order_id, e.kind),
    )
    found = {(order, kind): (int(count), int(points)) for order, kind, count, points in rows}
    expected: dict[tuple[str, str], tuple[int, int]] = {}
    for _, order, full in stats.orders:
        expected[(order, "REDEMPTION")] = (1, -APPLY_POINTS)
        expected[(order, "REVERSAL")] = (2, APPLY_POINTS) if full else (1, FIRST_RETURN)
    assert found == expected, _diff(expected, found)

    r = redemptions.c
    stored = fetch(
        url,
        select(r.order_id, r.points, r.points_reversed, r.state).where(
            r.customer_id.in_(customers)
        ),
    )
    assert len(stored) == len(stats.orders), (len(stored), len(stats.orders))
    by_order = {row.order_id: row for row in stored}
    for _, order, full in stats.orders:
        row = by_order[order]
        assert (row.points, row.points_reversed, row.state) == (
            (APPLY_POINTS, APPLY_POINTS, "REVERSED")
            if full
            else (APPLY_POINTS, FIRST_RETURN, "PARTIALLY_REVERSED")
        ), (order, row)

    k = idempotency_keys.c
    claimed = {
        row.request_id
        for row in fetch(url, select(k.request_id).where(k.program_id == PROGRAM))
        if any(row.request_id.startswith(c) for c in customers)
    }
    wanted = {f"{customer}-grant" for customer in customers}
    wanted |= {request_id for _, request_id, _ in stats.grants}
    for _, order, full in stats.orders:
        wanted |= {f"{order}-apply", f"{order}-return-1"} | (
            {f"{order}-return-2"} if full else set()
        )
    assert claimed == wanted, _diff({r: 1 for r in wanted}, {r: 1 for r in claimed})


def _diff(expected: dict[object, object], found: dict[object, object]) -> str:
    missing = {k: v for k, v in expected.items() if found.get(k) != v}
    extra = {k: v for k, v in found.items() if k not in expected}
    return f"differs: wanted {list(missing.items())[:10]}, extra {list(extra.items())[:10]}"


def run_reconcile(url: str, as_of: datetime) -> subprocess.CompletedProcess[str]:
    """`loyalty-server reconcile` as operators run it, at `as_of`."""
    args = [
        sys.executable, "-m", "server.main", "reconcile",
        "--database-url", url,
        "--allow-clock-override",
        "--as-of", as_of.isoformat(),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_reconciles(url: str, as_of: datetime) -> str:
    done = run_reconcile(url, as_of)
    assert done.returncode == 0, f"reconcile exited {done.returncode}:\n{done.stdout}{done.stderr}"
    assert "no mismatch" in done.stdout, done.stdout
    return done.stdout.strip()


def scrape(address: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the server's /metrics, keyed by name and labels."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, number = line.rpartition(" ")
        name, _, labels = name_labels.partition("{")
        pairs = frozenset(
            tuple(pair.split("=", 1)) for pair in labels.rstrip("}").split(",") if "=" in pair
        )
        samples[(name, frozenset((k, v.strip('"')) for k, v in pairs))] = float(number)
    return samples


def metric(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def error_name(error: LoyaltyError) -> str:
    return f"{error.code.name} {error.reason}"


def run_expiry(url: str, as_of: datetime) -> str:
    """`loyalty-server expire` up to `as_of`; returns what it printed."""
    args = [
        sys.executable, "-m", "server.main", "expire",
        "--database-url", url,
        "--allow-clock-override",
        "--as-of", as_of.isoformat(),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"expiry job failed ({done.returncode}): {done.stderr}"
    return done.stdout
