"""The Python client (sync and asyncio) against a real server."""

import asyncio

import grpc
import pytest

from loyalty.client import (
    AlreadyExistsError,
    AsyncLoyaltyClient,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    LoyaltyClient,
    NotFoundError,
    parse_cart,
)
from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import redemption_pb2
from tests.e2e.builders import T0, hours, new_id
from tests.support.server import ServerProcess

# 2 × 5,000 ₽ + 300 ₽ delivery, as the README's scenario.
CART = parse_cart(
    """{"currency": "RUB", "deliveryMinor": 30000, "lines": [
        {"lineId": "1", "sku": "drill", "category": "tools", "quantity": 2,
         "unitPriceMinor": 500000}]}"""
)


@pytest.fixture
def client(server: ServerProcess) -> LoyaltyClient:
    return LoyaltyClient(server.address, token="any-token-is-fine-for-now")


def test_grant_quote_apply_partial_reverse_account(client: LoyaltyClient) -> None:
    customer, order = new_id("c"), new_id("order")
    granted = client.grant_points(
        program_id="stomatorg", customer_id=customer, points=500, source="loyalty", as_of=T0
    )
    assert granted.balance_after == 500

    quote = client.quote_redemption(
        program_id="stomatorg", customer_id=customer, cart=CART, as_of=T0
    )
    best = quote.options[quote.recommended_option]
    # base tier: floor(1,000,000 × 3 %) = 30,000 kopecks = 300 points; delivery is not in the base
    assert (best.max_points, best.payable_minor) == (300, 1_000_000)
    assert best.binding_constraint == redemption_pb2.BINDING_CONSTRAINT_TIER_CAP

    applied = client.apply_redemption(
        program_id="stomatorg", customer_id=customer, order_id=order, cart=CART,
        points=300, as_of=T0,
    )  # fmt: skip
    assert applied.balance_after == 200

    back = client.reverse_redemption(
        program_id="stomatorg", order_id=order, lines={"1": 1}, as_of=hours(1)
    )
    assert (back.points_returned, back.balance_after) == (150, 350)  # floor(300 × 1 / 2)

    account = client.get_account(program_id="stomatorg", customer_id=customer, as_of=hours(1))
    assert (account.spendable_points, dict(account.balances_by_source)) == (350, {"loyalty": 350})
    redemption = client.get_redemption(program_id="stomatorg", order_id=order, as_of=hours(1))
    assert redemption.redemption.state == redemption_pb2.REDEMPTION_STATE_PARTIALLY_REVERSED


def test_a_repeated_request_id_returns_the_first_answer(client: LoyaltyClient) -> None:
    customer, request_id = new_id("c"), new_id("grant")
    grant = {"program_id": "stomatorg", "customer_id": customer, "source": "loyalty", "as_of": T0}
    first = client.grant_points(points=100, request_id=request_id, **grant)  # type: ignore[arg-type]
    again = client.grant_points(points=100, request_id=request_id, **grant)  # type: ignore[arg-type]
    assert first == again and again.balance_after == 100
    with pytest.raises(AlreadyExistsError) as reused:
        client.grant_points(points=7, request_id=request_id, **grant)  # type: ignore[arg-type]
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_errors_carry_reason_metadata_and_field_violations(client: LoyaltyClient) -> None:
    customer = new_id("c")
    client.grant_points(
        program_id="stomatorg", customer_id=customer, points=500, source="loyalty", as_of=T0
    )
    with pytest.raises(FailedPreconditionError) as too_many:
        client.apply_redemption(
            program_id="stomatorg", customer_id=customer, order_id=new_id("o"), cart=CART,
            points=301, as_of=T0,
        )  # fmt: skip
    assert too_many.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert too_many.value.reason == "EXCEEDS_MAXIMUM"
    assert too_many.value.metadata == {"requested": "301", "maximum": "300"}

    with pytest.raises(InvalidArgumentError) as bad:
        client.grant_points(program_id="stomatorg", customer_id="", points=0, source="loyalty")
    assert bad.value.reason == "INVALID_REQUEST"
    assert {v.field for v in bad.value.field_violations} == {"customer_id", "points"}
    assert all(isinstance(v, FieldViolation) and v.description for v in bad.value.field_violations)

    with pytest.raises(NotFoundError) as unknown:
        client.get_account(program_id="no-such-program", customer_id=customer)
    assert unknown.value.reason == "PROGRAM_NOT_FOUND"


def test_ledger_entries_walks_every_page(client: LoyaltyClient) -> None:
    customer = new_id("c")
    for n in (1, 2, 3):
        client.grant_points(
            program_id="stomatorg", customer_id=customer, points=n, source="action",
            as_of=hours(n),
        )  # fmt: skip
    entries = list(
        client.ledger_entries(
            program_id="stomatorg", customer_id=customer, page_size=1, as_of=hours(4)
        )
    )
    assert [(e.kind, e.points) for e in entries] == [
        (account_pb.LEDGER_ENTRY_KIND_GRANT, n) for n in (1, 2, 3)
    ]


def test_the_asyncio_client(server: ServerProcess) -> None:
    customer, order = new_id("c"), new_id("order")

    async def scenario() -> tuple[int, int, int]:
        async with AsyncLoyaltyClient(server.address, token="t") as client:
            await client.grant_points(
                program_id="stomatorg", customer_id=customer, points=500, source="loyalty",
                as_of=T0,
            )  # fmt: skip
            applied = await client.apply_redemption(
                program_id="stomatorg", customer_id=customer, order_id=order, cart=CART,
                points=300, as_of=T0,
            )  # fmt: skip
            back = await client.reverse_redemption(
                program_id="stomatorg", order_id=order, as_of=hours(1)
            )
            ledger = [e async for e in client.ledger_entries(
                program_id="stomatorg", customer_id=customer, as_of=hours(1))]  # fmt: skip
            return applied.balance_after, back.balance_after, len(ledger)

    assert asyncio.run(scenario()) == (200, 500, 3)  # the whole order back: all 300 points
