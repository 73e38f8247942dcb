"""After a restart, a replay returns the first answer and changes nothing (docs/rules.md §7).

The idempotency record commits with the effect, in the database, so a new
server process on the same database answers a replay from it. This module
restarts its server: it uses `server.stubs()` after each restart, never the
module's `stubs` fixture (whose channel the restart closes).
"""

import signal
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from tests.integration.common import (
    RPC_TIMEOUT,
    Ids,
    account_request,
    apply_request,
    cart,
    failure,
    grant_request,
    raw_method,
    snapshot,
    ts,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(90)

AS_OF = datetime(2031, 4, 7, 9, 30, tzinfo=UTC)

# 50,000 RUB on one line: base-tier cap 3 % = 1,500 points; the customer has 1,000.
BASKET = cart(("line-1", 1, 5_000_000))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_replay_after_restart_returns_the_first_answer(
    server: ServerProcess, db_url: str, sig: signal.Signals
) -> None:
    ids = Ids(f"restart-{sig.name}")
    grant = grant_request(ids, points=1_000, as_of=AS_OF)
    apply = apply_request(ids, order=1, request="apply", basket=BASKET, points=300, as_of=AS_OF)

    assert server.channel is not None
    first_grant = raw_method(server.channel, "AccountService", "GrantPoints")(
        grant, timeout=RPC_TIMEOUT
    )
    first_apply = raw_method(server.channel, "RedemptionService", "ApplyRedemption")(
        apply, timeout=RPC_TIMEOUT
    )
    applied = redemption_pb.ApplyRedemptionResponse.FromString(first_apply)
    assert applied.balance_after == 700
    assert applied.redemption.points == 300
    before = snapshot(db_url)

    code = server.stop(sig=sig)
    if sig == signal.SIGTERM:
        assert code == 0, "SIGTERM is a graceful shutdown"
    server.start()  # same port, same database
    assert server.channel is not None
    stubs = server.stubs()

    # The same requests again — one also with a later as_of, which is not part of
    # "the same request" — get the first answers, byte for byte.
    later = type(apply)()
    later.CopyFrom(apply)
    later.as_of.CopyFrom(ts(AS_OF + timedelta(hours=5)))
    for request in (apply, later):
        again = raw_method(server.channel, "RedemptionService", "ApplyRedemption")(
            request, timeout=RPC_TIMEOUT
        )
        assert again == first_apply
        replayed = redemption_pb.ApplyRedemptionResponse.FromString(again)
        assert replayed.redemption.redemption_id == applied.redemption.redemption_id
        assert replayed.balance_after == 700
    again_grant = raw_method(server.channel, "AccountService", "GrantPoints")(
        grant, timeout=RPC_TIMEOUT
    )
    assert again_grant == first_grant
    assert account_pb.GrantPointsResponse.FromString(again_grant).balance_after == 1_000

    # The same request id for a different request is refused, and changes nothing.
    changed = type(apply)()
    changed.CopyFrom(apply)
    changed.points = 299
    with pytest.raises(grpc.RpcError) as raised:
        stubs.redemption.ApplyRedemption(changed, timeout=RPC_TIMEOUT)
    assert failure(raised.value) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")

    assert snapshot(db_url) == before, "a replay must change nothing"
    account = stubs.account.GetAccount(account_request(ids, as_of=AS_OF), timeout=RPC_TIMEOUT)
    assert account.spendable_points == 700
