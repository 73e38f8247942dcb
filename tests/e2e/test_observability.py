"""Metrics and logs after a scripted scenario, counted by hand (issue: operations)."""

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from tests.e2e.builders import (
    T0,
    apply_request,
    cart,
    grant,
    line,
    new_id,
    quote,
    reverse_request,
    ts,
)
from tests.support.server import ServerProcess, Stubs

RED = "loyalty.v1.RedemptionService"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    directory = tmp_path_factory.mktemp("observed")
    process = ServerProcess(
        f"sqlite:///{directory / 'db.sqlite3'}",
        log_path=directory / "server.log",
        extra_args=("--metrics-listen", "127.0.0.1:0", "--log-format", "json"),
    ).start()
    assert process.metrics_address is not None
    yield process, process.metrics_address
    process.stop()


def scrape(address: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_counters_move_by_exactly_the_scenario(observed: tuple[ServerProcess, str]) -> None:
    process, address = observed
    stubs: Stubs = process.stubs()
    before = scrape(address)
    customer = new_id("c")
    two_drills = cart(line("1", 2, 500_000))  # 2 × 5,000.00 RUB = 1,000,000 minor

    grant(stubs, "stomatorg", customer, 500, "loyalty")  # granted +500
    # base tier: 3 % of 1,000,000 = 30,000 minor = 300 points; balance 500 → max 300
    assert quote(stubs, "stomatorg", customer, two_drills).options[0].max_points == 300
    first = apply_request("stomatorg", customer, "o1", two_drills, 300)
    stubs.redemption.ApplyRedemption(first)  # redeemed +300, balance 200
    stubs.redemption.ApplyRedemption(first)  # a replay: replays +1, nothing else
    with pytest.raises(grpc.RpcError) as refused:  # max is now min(300, 200) = 200
        stubs.redemption.ApplyRedemption(
            apply_request("stomatorg", customer, "o2", two_drills, 250)
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # one of two units back: floor(300 × 1 / 2) = 150 → reversed +150, balance 350
    stubs.redemption.ReverseRedemption(reverse_request("stomatorg", "o1", ("1", 1)))
    held = apply_request("stomatorg", customer, "o3", two_drills, 100)
    held.hold_seconds = 600
    stubs.redemption.ApplyRedemption(held)  # held +100
    stubs.redemption.CaptureRedemption(
        redemption_pb.CaptureRedemptionRequest(
            request_id=new_id("cap"), program_id="stomatorg", order_id="o3", as_of=ts(T0)
        )
    )  # captured +100
    # 1 × 10,000.00 RUB delivered, nothing spent: 3 % of 1,000,000 = 30,000 minor = 300 points
    stubs.account.AccrueOrder(
        account_pb.AccrueOrderRequest(
            request_id=new_id("acc"),
            program_id="stomatorg",
            customer_id=customer,
            order_id="o4",
            cart=cart(line("1", 1, 1_000_000)),
            delivered_at=ts(T0 - timedelta(days=1)),
            as_of=ts(T0),
        )
    )  # accrued +300 (pending)
    stubs.redemption.ReverseRedemption(reverse_request("stomatorg", "o4"))  # clawed back +300

    after = scrape(address)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    apply = {"grpc_type": "unary", "grpc_service": RED, "grpc_method": "ApplyRedemption"}
    assert moved("grpc_server_started_total", **apply) == 4
    assert moved("grpc_server_handled_total", **apply, grpc_code="OK") == 3
    assert moved("grpc_server_handled_total", **apply, grpc_code="FAILED_PRECONDITION") == 1
    assert moved("grpc_server_handling_seconds_count", **apply) == 4
    reverse = {**apply, "grpc_method": "ReverseRedemption"}
    assert moved("grpc_server_handled_total", **reverse, grpc_code="OK") == 2
    program = {"program": "stomatorg"}
    assert moved("loyalty_points_granted_total", **program) == 500
    assert moved("loyalty_points_quoted_total", **program) == 300
    assert moved("loyalty_points_redeemed_total", **program) == 300
    assert moved("loyalty_points_reversed_total", **program) == 150
    assert moved("loyalty_points_held_total", **program) == 100
    assert moved("loyalty_points_captured_total", **program) == 100
    assert moved("loyalty_points_accrued_total", **program) == 300
    assert moved("loyalty_points_clawed_back_total", **program) == 300
    assert moved("loyalty_idempotent_replays_total", method="ApplyRedemption") == 1


def test_one_json_line_per_call_with_ids_and_no_cart(observed: tuple[ServerProcess, str]) -> None:
    process, _ = observed
    stubs = process.stubs()
    customer = new_id("c")
    request = apply_request(
        "stomatorg", customer, new_id("o"), cart(line("secret-sku-line", 1, 100, sku="SKU-9")), 5
    )
    with pytest.raises(grpc.RpcError):
        stubs.redemption.ApplyRedemption(
            request, metadata=(("authorization", "Bearer top-secret-token"),)
        )
    # The server writes its line once the call is over, which may be just after we hear back.
    deadline = time.monotonic() + 10
    mine: list[dict[str, object]] = []
    while not mine and time.monotonic() < deadline:
        lines = Path(process.log_path).read_text().splitlines()
        mine = [json.loads(text) for text in lines if request.request_id in text]
        time.sleep(0.05)
    assert len(mine) == 1
    entry = mine[0]
    assert entry["logger"] == "loyalty.access"
    assert entry["method"] == "ApplyRedemption"
    assert entry["status"] == "FAILED_PRECONDITION"
    assert entry["customer_id"] == customer and entry["order_id"] == request.order_id
    assert entry["duration_ms"] >= 0
    log_text = Path(process.log_path).read_text()
    assert "top-secret-token" not in log_text
    assert "SKU-9" not in log_text and "secret-sku-line" not in log_text
