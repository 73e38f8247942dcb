"""A database stopped under a running server (issue 3, docs/rules.md §7 and §9).

While PostgreSQL is down every call is UNAVAILABLE with reason
DATABASE_UNAVAILABLE and health is NOT_SERVING; once it is back the same
server process (no restart) is SERVING again, answers, and still has what
was written before.

The shared PostgreSQL must never be stopped: each test runs its own
throwaway cluster (tests/support/throwaway_cluster.py). Under CI=true a
cluster that cannot be started fails the test instead of skipping it.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from loyalty.v1 import redemption_service_pb2 as redemption_pb
from tests.integration.common import (
    PROGRAM,
    RPC_TIMEOUT,
    Ids,
    account_request,
    apply_request,
    cart,
    failure,
    grant_request,
    ts,
)
from tests.integration.conftest import InvariantWatch
from tests.support.server import ServerProcess, Stubs
from tests.support.throwaway_cluster import throwaway_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

AS_OF = datetime(2031, 6, 20, 8, 0, tzinfo=UTC)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")

# 20,000 RUB on one line: base-tier cap 3 % = 600 points, more than any apply here.
BASKET = cart(("line-1", 1, 2_000_000))
ONE_TIER = "denco"
ONE_TIER_CART = cart(("line-1", 1, 1_000_000))
# An outage is answered UNAVAILABLE at once, never by waiting out the caller's deadline.
QUICK = 5.0


def _calls(stubs: Stubs, ids: Ids, attempt: str) -> dict[str, Callable[[], Any]]:
    """One call of each kind (a write, a read, a quote), each a fresh request."""
    return {
        # First, before health notices: a one-tier program's quote is read on the event
        # loop (server/store/loop_pool.py), on a connection of its own pool.
        "QuoteRedemption on the loop": lambda: _one_tier_quote(stubs, ids, timeout=QUICK),
        "GrantPoints": lambda: stubs.account.GrantPoints(
            grant_request(ids, points=10, as_of=AS_OF, n=f"grant-{attempt}"), timeout=RPC_TIMEOUT
        ),
        "ApplyRedemption": lambda: stubs.redemption.ApplyRedemption(
            apply_request(
                ids,
                order=attempt,
                request=f"apply-{attempt}",
                basket=BASKET,
                points=10,
                as_of=AS_OF,
            ),
            timeout=RPC_TIMEOUT,
        ),
        "GetAccount": lambda: stubs.account.GetAccount(
            account_request(ids, as_of=AS_OF), timeout=RPC_TIMEOUT
        ),
        "QuoteRedemption": lambda: stubs.redemption.QuoteRedemption(
            redemption_pb.QuoteRedemptionRequest(
                program_id=PROGRAM, customer_id=ids.customer, cart=BASKET, as_of=ts(AS_OF)
            ),
            timeout=RPC_TIMEOUT,
        ),
    }


def _one_tier_quote(
    stubs: Stubs, ids: Ids, *, timeout: float = RPC_TIMEOUT
) -> redemption_pb.QuoteRedemptionResponse:
    return stubs.redemption.QuoteRedemption(
        redemption_pb.QuoteRedemptionRequest(
            program_id=ONE_TIER, customer_id=ids.customer, cart=ONE_TIER_CART, as_of=ts(AS_OF)
        ),
        timeout=timeout,
    )


def _all_unavailable(stubs: Stubs, ids: Ids, attempt: str) -> None:
    for name, call in _calls(stubs, ids, attempt).items():
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert failure(raised.value) == UNAVAILABLE, name


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_database_stopped_under_the_server_then_back(
    mode: str, tmp_path: Path, invariants: InvariantWatch
) -> None:
    ids = Ids(f"outage-{mode}")
    with throwaway_cluster() as cluster:
        url = cluster.create_database("loyalty")
        server = ServerProcess(url, log_path=tmp_path / "server.log").start()
        try:
            stubs = server.stubs()
            assert server.process is not None
            pid = server.process.pid

            stubs.account.GrantPoints(
                grant_request(ids, points=1_000, as_of=AS_OF), timeout=RPC_TIMEOUT
            )
            before = stubs.redemption.ApplyRedemption(
                apply_request(
                    ids, order="before", request="before", basket=BASKET, points=200, as_of=AS_OF
                ),
                timeout=RPC_TIMEOUT,
            )
            assert before.balance_after == 800
            one_tier = grant_request(ids, points=500, as_of=AS_OF, n="one-tier")
            one_tier.program_id = ONE_TIER
            stubs.account.GrantPoints(one_tier, timeout=RPC_TIMEOUT)
            assert _one_tier_quote(stubs, ids).spendable_points == 500

            cluster.stop(mode)
            assert not cluster.is_running()

            # At once, before health has noticed: the calls reach the dead connections.
            _all_unavailable(stubs, ids, "early")
            server.wait_for(NOT_SERVING, timeout=15)
            # It stays NOT_SERVING (and calls stay UNAVAILABLE) while the database is down:
            # three rounds, each of whose calls tries the database anew.
            for attempt in range(3):
                assert server.health() == NOT_SERVING
                _all_unavailable(stubs, ids, f"down-{attempt}")

            cluster.start()  # same port, same data directory
            server.wait_for(SERVING, timeout=30)
            assert server.process is not None and server.process.pid == pid, "no restart"

            # What was written before the outage is all there.
            account = stubs.account.GetAccount(account_request(ids, as_of=AS_OF), timeout=30)
            assert account.spendable_points == 800
            assert _one_tier_quote(stubs, ids).spendable_points == 500
            got = stubs.redemption.GetRedemption(
                redemption_pb.GetRedemptionRequest(
                    program_id=PROGRAM, order_id=ids.order("before"), as_of=ts(AS_OF)
                ),
                timeout=RPC_TIMEOUT,
            ).redemption
            assert got.redemption_id == before.redemption.redemption_id
            # A replay of the pre-outage apply gets its first answer…
            replay = stubs.redemption.ApplyRedemption(
                apply_request(
                    ids, order="before", request="before", basket=BASKET, points=200, as_of=AS_OF
                ),
                timeout=RPC_TIMEOUT,
            )
            assert replay == before
            # …and new writes succeed. None of the refused calls left anything behind.
            after = stubs.redemption.ApplyRedemption(
                apply_request(
                    ids, order="after", request="after", basket=BASKET, points=100, as_of=AS_OF
                ),
                timeout=RPC_TIMEOUT,
            )
            assert after.balance_after == 700
            granted = stubs.account.GrantPoints(
                grant_request(ids, points=5, as_of=AS_OF, n="grant-after"), timeout=RPC_TIMEOUT
            )
            assert granted.balance_after == 705
            assert server.health() == SERVING
        finally:
            server.stop()
        # The cluster is gone before the autouse teardown runs: check here.
        invariants.check(url, AS_OF)
