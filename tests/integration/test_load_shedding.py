"""A server-side cap on calls in progress sheds load at once, and sheds nothing it started.

PostgreSQL: the test holds a customer's account row lock, so the calls on that account block
inside the server until it lets go. With `--max-concurrent-rpcs 4`, four blocked grants fill
the server; every further call — grants for other customers, reads, quotes, health checks —
is answered RESOURCE_EXHAUSTED at once rather than queued. Once the lock goes, the four
complete; none of the shed calls left a trace, and each, retried with its request id, takes
effect exactly once. The same server takes `--max-message-bytes 65536` to the byte.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from tests.e2e.builders import quote_of_size
from tests.integration.common import PROGRAM, RPC_TIMEOUT, Ids, cart, grant_request, ts
from tests.support.databases import fresh_postgres
from tests.support.polling import wait_until
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

AS_OF = datetime(2031, 5, 5, 10, 0, tzinfo=UTC)
CAP = 4
SHED = 24  # calls sent while the server is full
MESSAGE_LIMIT = 65_536


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = Path(tmp_path_factory.mktemp("shedding")) / "server.log"
    args = ("--max-concurrent-rpcs", str(CAP), "--max-message-bytes", str(MESSAGE_LIMIT))
    process = ServerProcess(db_url, log_path=log, extra_args=args).start()
    yield process
    process.stop()


def lock_waiters(db_url: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_calls_past_the_cap_are_shed_at_once_and_none_is_lost(
    server: ServerProcess, db_url: str
) -> None:
    stubs = server.stubs()
    hot = Ids("hot")
    assert (
        stubs.account.GrantPoints(
            grant_request(hot, points=1000, as_of=AS_OF), timeout=RPC_TIMEOUT
        ).balance_after
        == 1000
    )
    others = [Ids(f"other-{i}") for i in range(SHED // 2)]
    shed_grants = [grant_request(ids, points=10, as_of=AS_OF) for ids in others]
    shed_calls: list[Callable[[], Any]] = [
        *(lambda r=r: stubs.account.GrantPoints(r, timeout=RPC_TIMEOUT) for r in shed_grants),
        *(
            lambda: stubs.account.GetAccount(
                account_pb.GetAccountRequest(
                    program_id=PROGRAM, customer_id=hot.customer, as_of=ts(AS_OF)
                ),
                timeout=RPC_TIMEOUT,
            )
            for _ in range(SHED // 4)
        ),
        *(
            lambda: stubs.redemption.QuoteRedemption(
                redemption_pb.QuoteRedemptionRequest(
                    program_id=PROGRAM, customer_id="q", cart=cart(("1", 1, 100_000)),
                    as_of=ts(AS_OF),
                ),
                timeout=RPC_TIMEOUT,
            )
            for _ in range(SHED // 8)
        ),
        *(lambda: server.health() for _ in range(SHED // 8)),
    ]  # fmt: skip
    assert len(shed_calls) == SHED

    with psycopg.connect(db_url) as locker:  # one transaction, rolled back at the end
        locker.execute(
            "SELECT 1 FROM accounts WHERE program_id = %s AND customer_id = %s FOR UPDATE",
            (PROGRAM, hot.customer),
        )
        blocked = [
            stubs.account.GrantPoints.future(
                grant_request(hot, points=10, as_of=AS_OF, n=f"blocked-{i}"), timeout=60
            )
            for i in range(CAP)
        ]
        wait_until(lambda: lock_waiters(db_url) == CAP, what=f"{CAP} calls on the lock")

        # Shed at once, not queued: each is refused while the blocked calls still wait for
        # the lock (a queued call would wait with them and end DEADLINE_EXCEEDED instead).
        outcomes = []
        for call in shed_calls:
            with pytest.raises(grpc.RpcError) as refused:
                call()
            error = refused.value
            outcomes.append((error.code(), error.details()))  # type: ignore[attr-defined]
        assert set(outcomes) == {
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")
        }
        assert not any(future.done() for future in blocked)
        assert lock_waiters(db_url) == CAP
        locker.rollback()

    balances = sorted(future.result(timeout=30).balance_after for future in blocked)
    assert balances == [1010, 1020, 1030, 1040]
    for ids in others:  # no trace of a shed grant
        account = stubs.account.GetAccount(
            account_pb.GetAccountRequest(
                program_id=PROGRAM, customer_id=ids.customer, as_of=ts(AS_OF)
            ),
            timeout=RPC_TIMEOUT,
        )
        assert account.spendable_points == 0
    for request in shed_grants * 2:  # retried twice with the same request ids: applied once
        assert stubs.account.GrantPoints(request, timeout=RPC_TIMEOUT).balance_after == 10
    ledger = stubs.account.ListLedgerEntries(
        account_pb.ListLedgerEntriesRequest(
            program_id=PROGRAM, customer_id=hot.customer, as_of=ts(AS_OF)
        ),
        timeout=RPC_TIMEOUT,
    )
    assert [entry.points for entry in ledger.entries] == [1000, 10, 10, 10, 10]


def test_the_configured_message_limit_holds_to_the_byte(server: ServerProcess) -> None:
    quote = server.stubs().redemption.QuoteRedemption
    with pytest.raises(grpc.RpcError) as judged:  # read: the promo code is too long
        quote(quote_of_size(MESSAGE_LIMIT), timeout=RPC_TIMEOUT)
    assert judged.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as refused:
        quote(quote_of_size(MESSAGE_LIMIT + 1), timeout=RPC_TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert "larger than max (65537 vs. 65536)" in refused.value.details()  # type: ignore[attr-defined]
    assert server.health() == health_pb2.HealthCheckResponse.SERVING
