"""Retries, request ids, deadlines and the bearer token, against an in-process fake server."""

import asyncio
import threading

import grpc
import pytest

from loyalty.client import (
    AbortedError,
    AsyncLoyaltyClient,
    DeadlineExceededError,
    LoyaltyClient,
    LoyaltyError,
    UnavailableError,
)
from tests.unit.client.fake_server import FakeAccounts, is_uuid4, serving

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
GRANT = {"program_id": "stomatorg", "customer_id": "c-1", "points": 5, "source": "loyalty"}


def test_unavailable_is_retried_with_the_same_generated_request_id() -> None:
    fake = FakeAccounts(failures=[UNAVAILABLE, UNAVAILABLE])
    with serving(fake) as target, LoyaltyClient(target) as client:
        response = client.grant_points(**GRANT)  # type: ignore[arg-type]
    assert response.balance_after == 5
    ids = fake.request_ids()
    assert len(ids) == 3  # two UNAVAILABLE, then the answer
    assert len(set(ids)) == 1 and is_uuid4(ids[0])


def test_the_callers_request_id_is_kept_across_retries() -> None:
    fake = FakeAccounts(failures=[UNAVAILABLE])
    with serving(fake) as target, LoyaltyClient(target) as client:
        client.grant_points(request_id="grant-42", **GRANT)  # type: ignore[arg-type]
    assert fake.request_ids() == ["grant-42", "grant-42"]


def test_each_call_gets_its_own_request_id() -> None:
    fake = FakeAccounts()
    with serving(fake) as target, LoyaltyClient(target) as client:
        client.grant_points(**GRANT)  # type: ignore[arg-type]
        client.grant_points(**GRANT)  # type: ignore[arg-type]
    first, second = fake.request_ids()
    assert first != second


def test_retries_stop_after_max_attempts() -> None:
    fake = FakeAccounts(failures=[UNAVAILABLE] * 10)
    with (
        serving(fake) as target,
        LoyaltyClient(target) as client,
        pytest.raises(UnavailableError),
    ):
        client.grant_points(**GRANT)  # type: ignore[arg-type]
    assert len(fake.received) == 4  # DEFAULT_MAX_ATTEMPTS


@pytest.mark.parametrize("code", [grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL])
def test_other_codes_are_not_retried(code: grpc.StatusCode) -> None:
    fake = FakeAccounts(failures=[code])
    with (
        serving(fake) as target,
        LoyaltyClient(target) as client,
        pytest.raises(LoyaltyError) as caught,
    ):
        client.grant_points(**GRANT)  # type: ignore[arg-type]
    assert caught.value.code is code
    assert isinstance(caught.value, AbortedError) == (code is grpc.StatusCode.ABORTED)
    assert len(fake.received) == 1


def test_every_call_has_a_deadline() -> None:
    release = threading.Event()  # the server answers only once released, after the deadline
    fake = FakeAccounts(hold=release)
    with serving(fake) as target, LoyaltyClient(target, timeout=0.2) as client:
        try:
            with pytest.raises(DeadlineExceededError):
                client.grant_points(**GRANT)  # type: ignore[arg-type]
        finally:
            release.set()


def test_the_token_goes_as_a_bearer_authorization_header() -> None:
    fake = FakeAccounts()
    with serving(fake) as target, LoyaltyClient(target, token="s3cret") as client:
        client.grant_points(**GRANT)  # type: ignore[arg-type]
    assert fake.received[0].metadata["authorization"] == "Bearer s3cret"


def test_the_asyncio_client_retries_with_the_same_request_id() -> None:
    fake = FakeAccounts(failures=[UNAVAILABLE, UNAVAILABLE])

    async def grant(target: str) -> int:
        async with AsyncLoyaltyClient(target, token="s3cret") as client:
            response = await client.grant_points(**GRANT)  # type: ignore[arg-type]
            return response.balance_after

    with serving(fake) as target:
        assert asyncio.run(grant(target)) == 5
    ids = fake.request_ids()
    assert len(ids) == 3 and len(set(ids)) == 1 and is_uuid4(ids[0])
    assert fake.received[-1].metadata["authorization"] == "Bearer s3cret"
