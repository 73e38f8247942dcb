"""The server as a process: health, reflection, `as_of` without clock override, SIGTERM."""

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from loyalty.v1 import account_service_pb2 as a
from loyalty.v1 import redemption_service_pb2 as pb
from tests.e2e.builders import (
    T0,
    TIMEOUT,
    apply_request,
    cart,
    line,
    new_id,
    reverse_request,
    rpc,
    ts,
)
from tests.e2e.rpc_errors import expect_error
from tests.support.server import ServerProcess, Stubs

GRACE_SECONDS = 2.0  # ServerProcess starts every server with --grace-seconds 2
SERVICES = ("loyalty.v1.RedemptionService", "loyalty.v1.AccountService")


@pytest.fixture(scope="module")
def strict_server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A second server on the same database, without --allow-clock-override."""
    log = Path(tmp_path_factory.mktemp("strict")) / "server.log"
    process = ServerProcess(db_url, log_path=log, allow_clock_override=False).start()
    yield process
    process.stop()


@pytest.mark.parametrize("service", ["", *SERVICES])
def test_health_is_serving(stubs: Stubs, service: str) -> None:
    response = stubs.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def reflect(server: ServerProcess, request: reflection_pb2.ServerReflectionRequest) -> Any:
    assert server.channel is not None
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    (response,) = list(stub.ServerReflectionInfo(iter([request]), timeout=TIMEOUT))
    return response


def test_reflection_lists_the_services(server: ServerProcess) -> None:
    response = reflect(server, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {service.name for service in response.list_services_response.service}
    assert set(SERVICES) <= names
    assert "grpc.health.v1.Health" in names


def test_reflection_describes_the_api(server: ServerProcess) -> None:
    response = reflect(
        server,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICES[0]),
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    by_name = {f.name: f for f in files}
    described = by_name["loyalty/v1/redemption_service.proto"]
    (service,) = described.service
    assert {m.name for m in service.method} == {
        "QuoteRedemption",
        "ApplyRedemption",
        "CaptureRedemption",
        "ReverseRedemption",
        "GetRedemption",
    }


def as_of_requests() -> dict[str, Any]:
    """One request of every implemented RPC, each setting `as_of`."""
    some_cart = cart(line("a", 1, 100_000))
    return {
        "QuoteRedemption": pb.QuoteRedemptionRequest(
            program_id="stomatorg", customer_id=new_id("c"), cart=some_cart, as_of=ts(T0)
        ),
        "ApplyRedemption": apply_request("stomatorg", new_id("c"), new_id("o"), some_cart, 1),
        "ReverseRedemption": reverse_request("stomatorg", new_id("o")),
        "GetRedemption": pb.GetRedemptionRequest(
            program_id="stomatorg", order_id=new_id("o"), as_of=ts(T0)
        ),
        "GetAccount": a.GetAccountRequest(
            program_id="stomatorg", customer_id=new_id("c"), as_of=ts(T0)
        ),
        "GrantPoints": a.GrantPointsRequest(
            request_id=new_id("r"),
            program_id="stomatorg",
            customer_id=new_id("c"),
            points=10,
            source="action",
            as_of=ts(T0),
        ),
        "ListLedgerEntries": a.ListLedgerEntriesRequest(
            program_id="stomatorg", customer_id=new_id("c"), as_of=ts(T0)
        ),
    }


@pytest.mark.parametrize("name", list(as_of_requests()))
def test_as_of_is_refused_without_clock_override(strict_server: ServerProcess, name: str) -> None:
    expect_error(
        rpc(strict_server.stubs(), name),
        as_of_requests()[name],
        grpc.StatusCode.PERMISSION_DENIED,
        "CLOCK_OVERRIDE_DISABLED",
    )


def test_without_as_of_the_strict_server_uses_its_clock(strict_server: ServerProcess) -> None:
    stubs = strict_server.stubs()
    customer = new_id("c")
    refused = a.GrantPointsRequest(
        request_id=new_id("r"),
        program_id="stomatorg",
        customer_id=customer,
        points=10,
        source="action",
        as_of=ts(T0),
    )
    expect_error(
        stubs.account.GrantPoints,
        refused,
        grpc.StatusCode.PERMISSION_DENIED,
        "CLOCK_OVERRIDE_DISABLED",
    )
    refused.ClearField("as_of")
    granted = stubs.account.GrantPoints(refused, timeout=TIMEOUT)
    assert (granted.points, granted.balance_after) == (10, 10)
    response = stubs.account.GetAccount(
        a.GetAccountRequest(program_id="stomatorg", customer_id=customer), timeout=TIMEOUT
    )
    assert response.spendable_points == 10
    assert dict(response.balances_by_source) == {"action": 10}


def test_sigterm_drains_then_exits_zero(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log = Path(tmp_path_factory.mktemp("sigterm")) / "server.log"
    process = ServerProcess(db_url, log_path=log).start()
    stubs = process.stubs()
    health = stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    # It exits by itself: the timeout only keeps a hung server from hanging the test.
    assert process.stop(sig=signal.SIGTERM, timeout=60) == 0
    messages = [json.loads(line)["message"] for line in log.read_text().splitlines()]
    drain = f"shutting down: NOT_SERVING, draining for up to {GRACE_SECONDS:.1f}s"
    assert messages[-2:] == [drain, "stopped"], messages
