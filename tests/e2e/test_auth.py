"""Bearer tokens and roles (docs/rules.md §9) on a real server listening beyond loopback.

The server reads two tokens from a TOML file, stored there only as SHA-256 digests (checkout,
admin), and one from LOYALTY_TOKENS in plain text (payments); it listens on 0.0.0.0, which it
allows only because tokens are configured. Every RPC is called under every role, without a
token and with broken credentials; the last test reads the server's whole log for the tokens.
"""

import functools
import hashlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from loyalty.client import LoyaltyClient, parse_cart
from loyalty.v1 import account_service_pb2 as a
from loyalty.v1 import redemption_pb2
from loyalty.v1 import redemption_service_pb2 as pb
from tests.e2e.builders import T0, TIMEOUT, cart, line, new_id, rpc, ts
from tests.e2e.rpc_errors import expect_error
from tests.support.server import ROOT, ServerProcess

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
TOKENS = {role: secrets.token_urlsafe(32) for role in ("checkout", "payments", "admin")}
WRONG = secrets.token_urlsafe(32)  # a well-formed token the server does not know
ROLES = tuple(TOKENS)

# Who may call what, as docs/rules.md §9 says: checkout quotes, applies and reads; payments
# captures, reverses and reads; admin calls everything.
MAY_CALL = {
    "QuoteRedemption": {"checkout", "admin"},
    "ApplyRedemption": {"checkout", "admin"},
    "CaptureRedemption": {"payments", "admin"},
    "ReverseRedemption": {"payments", "admin"},
    "GetRedemption": {"checkout", "payments", "admin"},
    "GetAccount": {"checkout", "payments", "admin"},
    "ListLedgerEntries": {"checkout", "payments", "admin"},
    "GrantPoints": {"admin"},
    "AccrueOrder": {"admin"},
}
SERVICE_OF = {
    name: "AccountService" if name in {"GetAccount", "ListLedgerEntries", "GrantPoints",
                                       "AccrueOrder"} else "RedemptionService"
    for name in MAY_CALL
}  # fmt: skip


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("auth")
    tokens_file = directory / "tokens.toml"
    tokens_file.write_text(
        "# token digests: printf %s TOKEN | sha256sum\n"
        f'"sha256:{sha256(TOKENS["checkout"])}" = "checkout"\n'
        f'"sha256:{sha256(TOKENS["admin"])}" = "admin"\n'
    )
    process = ServerProcess(
        f"sqlite:///{directory / 'loyalty.sqlite3'}",
        log_path=directory / "server.log",
        extra_args=("--tokens", str(tokens_file)),
        env={"LOYALTY_TOKENS": f"{TOKENS['payments']}=payments"},
        host="0.0.0.0",
    )
    yield process.start()
    process.stop()


def requests_for(program_id: str) -> dict[str, Any]:
    """A well-formed request of every RPC, for `program_id`."""
    some_cart = cart(line("1", 1, 100_000))
    return {
        "QuoteRedemption": pb.QuoteRedemptionRequest(
            program_id=program_id, customer_id="c", cart=some_cart, as_of=ts(T0)
        ),
        "ApplyRedemption": pb.ApplyRedemptionRequest(
            request_id=new_id("r"), program_id=program_id, customer_id="c", order_id="o",
            cart=some_cart, points=1, as_of=ts(T0),
        ),
        "CaptureRedemption": pb.CaptureRedemptionRequest(
            request_id=new_id("r"), program_id=program_id, order_id="o", as_of=ts(T0)
        ),
        "ReverseRedemption": pb.ReverseRedemptionRequest(
            request_id=new_id("r"), program_id=program_id, order_id="o",
            lines=[redemption_pb2.ReturnedLine(line_id="1", quantity=1)], as_of=ts(T0),
        ),
        "GetRedemption": pb.GetRedemptionRequest(program_id=program_id, order_id="o", as_of=ts(T0)),
        "GetAccount": a.GetAccountRequest(program_id=program_id, customer_id="c", as_of=ts(T0)),
        "ListLedgerEntries": a.ListLedgerEntriesRequest(
            program_id=program_id, customer_id="c", as_of=ts(T0)
        ),
        "GrantPoints": a.GrantPointsRequest(
            request_id=new_id("r"), program_id=program_id, customer_id="c", points=1,
            source="loyalty", as_of=ts(T0),
        ),
        "AccrueOrder": a.AccrueOrderRequest(
            request_id=new_id("r"), program_id=program_id, customer_id="c", order_id="o",
            cart=some_cart, delivered_at=ts(T0), as_of=ts(T0),
        ),
    }  # fmt: skip


def calling(server: ServerProcess, name: str, *metadata: tuple[str, str]) -> Callable[..., Any]:
    return functools.partial(rpc(server.stubs(), name), metadata=metadata)


def bearer(token: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {token}")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(MAY_CALL))
def test_each_role_calls_exactly_its_rpcs(server: ServerProcess, role: str, name: str) -> None:
    # An unknown program: a call that gets past the gate is judged, and fails NOT_FOUND.
    method = calling(server, name, bearer(TOKENS[role]))
    request = requests_for("no-such-program")[name]
    if role in MAY_CALL[name]:
        expect_error(method, request, grpc.StatusCode.NOT_FOUND, "PROGRAM_NOT_FOUND")
    else:
        full = f"/loyalty.v1.{SERVICE_OF[name]}/{name}"
        expect_error(
            method, request, DENIED, "ROLE_NOT_ALLOWED", metadata={"role": role, "method": full}
        )


@pytest.mark.parametrize("name", list(MAY_CALL))
def test_without_a_token_every_rpc_is_unauthenticated(server: ServerProcess, name: str) -> None:
    request = requests_for("stomatorg")[name]
    expect_error(calling(server, name), request, UNAUTHENTICATED, "TOKEN_MISSING")


BROKEN = {
    "unknown token": (bearer(WRONG),),
    "the digest in place of the token": (bearer(f"sha256:{sha256(TOKENS['admin'])}"),),
    "the token with one more character": (bearer(TOKENS["admin"] + "x"),),
    "a prefix of the token": (bearer(TOKENS["admin"][:-1]),),
    "basic scheme": (("authorization", f"Basic {TOKENS['admin']}"),),
    "no scheme": (("authorization", TOKENS["admin"]),),
    "empty bearer": (("authorization", "Bearer "),),
    "two authorization headers": (bearer(TOKENS["admin"]), bearer(TOKENS["admin"])),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_credentials_are_unauthenticated(server: ServerProcess, case: str) -> None:
    request = requests_for("stomatorg")["GetAccount"]
    method = calling(server, "GetAccount", *BROKEN[case])
    expect_error(method, request, UNAUTHENTICATED, "TOKEN_INVALID")


def test_the_scheme_is_case_insensitive(server: ServerProcess) -> None:
    method = calling(server, "GetAccount", ("authorization", f"bearer {TOKENS['checkout']}"))
    response = method(requests_for("stomatorg")["GetAccount"], timeout=TIMEOUT)
    assert response.spendable_points == 0


def test_health_and_reflection_need_no_token(server: ServerProcess) -> None:
    assert server.channel is not None
    health = health_pb2_grpc.HealthStub(server.channel)
    status = health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    (answer,) = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT
    )
    names = {service.name for service in answer.list_services_response.service}
    assert {"loyalty.v1.RedemptionService", "loyalty.v1.AccountService"} <= names


def test_checkout_payments_and_admin_share_one_order(server: ServerProcess) -> None:
    """The README scenario, each step under the role that owns it (Python client, tokens)."""
    two_drills = parse_cart((ROOT / "examples" / "carts" / "two-drills.json").read_text())
    customer, order = new_id("c"), new_id("o")
    ids = {"program_id": "stomatorg", "as_of": T0}

    def client(role: str) -> LoyaltyClient:
        return LoyaltyClient(server.address, timeout=TIMEOUT, token=TOKENS[role])

    with client("admin") as admin, client("checkout") as checkout, client("payments") as payments:
        granted = admin.grant_points(**ids, customer_id=customer, points=500, source="loyalty")
        assert granted.balance_after == 500
        quote = checkout.quote_redemption(**ids, customer_id=customer, cart=two_drills)
        assert quote.options[quote.recommended_option].max_points == 300
        held = checkout.apply_redemption(
            **ids, customer_id=customer, order_id=order, cart=two_drills, points=300,
            hold_seconds=600,
        )  # fmt: skip
        assert (held.redemption.state, held.balance_after) == (
            redemption_pb2.REDEMPTION_STATE_HELD,
            200,
        )
        captured = payments.capture_redemption(**ids, order_id=order)
        assert captured.redemption.state == redemption_pb2.REDEMPTION_STATE_APPLIED
        returned = payments.reverse_redemption(**ids, order_id=order, lines=[("1", 1)])
        assert (returned.points_returned, returned.balance_after) == (150, 350)
        for reader in (checkout, payments, admin):
            assert reader.get_account(**ids, customer_id=customer).spendable_points == 350


def test_tokens_never_reach_the_log_and_roles_do(server: ServerProcess) -> None:
    log = server.log_path.read_text()
    for secret in (*TOKENS.values(), WRONG):
        assert secret not in log
        assert secret[:12] not in log  # nor a recognisable piece of one
    assert sha256(TOKENS["admin"]) not in log
    assert '"status": "PERMISSION_DENIED", ' in log and '"role": "checkout"' in log
    assert '"role": "payments"' in log and '"role": "admin"' in log
    unauthenticated = [row for row in log.splitlines() if '"status": "UNAUTHENTICATED"' in row]
    assert len(unauthenticated) == len(MAY_CALL) + len(BROKEN)
    assert not any('"role"' in row for row in unauthenticated)
    assert "serving on 0.0.0.0:" in log and "3 tokens" in log
    assert "1 of 3 tokens are configured in plain text" in log
