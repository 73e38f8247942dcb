"""Decoding a failed call's status details into the client's exceptions."""

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from loyalty.client import (
    AlreadyExistsError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    LoyaltyError,
    UnavailableError,
    decode_rpc_error,
)
from loyalty.client.errors import STATUS_DETAILS_KEY, error_from_status


def packed(*details: object) -> bytes:
    status = status_pb2.Status(code=9, message="from the status")
    for detail in details:
        anything = any_pb2.Any()
        anything.Pack(detail)  # type: ignore[arg-type]
        status.details.append(anything)
    return status.SerializeToString()


def exceeds_maximum() -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(
        reason="EXCEEDS_MAXIMUM", domain="loyalty", metadata={"requested": "301", "maximum": "300"}
    )


def test_error_info_gives_reason_domain_and_metadata() -> None:
    error = error_from_status(
        code=grpc.StatusCode.FAILED_PRECONDITION,
        message="from the call",
        trailing_metadata=[("other", "x"), (STATUS_DETAILS_KEY, packed(exceeds_maximum()))],
    )
    assert isinstance(error, FailedPreconditionError)
    assert (error.code, error.reason, error.domain) == (
        grpc.StatusCode.FAILED_PRECONDITION, "EXCEEDS_MAXIMUM", "loyalty",
    )  # fmt: skip
    assert error.metadata == {"requested": "301", "maximum": "300"}
    assert error.field_violations == ()
    assert error.message == "from the status"
    assert str(error) == "FAILED_PRECONDITION EXCEEDS_MAXIMUM: from the status"


def test_bad_request_gives_field_violations_in_order() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="customer_id", description="empty"),
            error_details_pb2.BadRequest.FieldViolation(
                field="cart.lines[0].quantity", description="must be > 0"
            ),
        ]
    )
    info = error_details_pb2.ErrorInfo(reason="INVALID_REQUEST", domain="loyalty")
    error = error_from_status(
        code=grpc.StatusCode.INVALID_ARGUMENT,
        message="bad",
        trailing_metadata=[(STATUS_DETAILS_KEY, packed(bad, info))],
    )
    assert isinstance(error, InvalidArgumentError)
    assert error.reason == "INVALID_REQUEST"
    assert error.field_violations == (
        FieldViolation("customer_id", "empty"),
        FieldViolation("cart.lines[0].quantity", "must be > 0"),
    )


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.ALREADY_EXISTS, AlreadyExistsError),
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, LoyaltyError),  # no subclass: the base class
    ],
)
def test_without_details_the_code_still_picks_the_class(
    code: grpc.StatusCode, kind: type[LoyaltyError]
) -> None:
    error = error_from_status(code=code, message="plain", trailing_metadata=None)
    assert type(error) is kind
    assert (error.reason, error.metadata, error.message) == ("", {}, "plain")
    assert str(error) == f"{code.name}: plain"


class FailedCall(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """What a stub raises: an RpcError that is also a Call."""

    def __init__(self, trailers: list[tuple[str, str | bytes]]) -> None:
        self.trailers = trailers

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.FAILED_PRECONDITION

    def details(self) -> str:
        return "from the call"

    def trailing_metadata(self) -> list[tuple[str, str | bytes]]:
        return self.trailers

    def initial_metadata(self) -> list[tuple[str, str]]:
        return []

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: object) -> bool:
        return False


def test_decode_rpc_error_reads_the_calls_trailers() -> None:
    error = decode_rpc_error(FailedCall([(STATUS_DETAILS_KEY, packed(exceeds_maximum()))]))
    assert isinstance(error, FailedPreconditionError)
    assert error.reason == "EXCEEDS_MAXIMUM"


def test_localized_message_gives_the_shoppers_sentence() -> None:
    sentence = "Вы запросили 301 балл, а к этой корзине можно применить максимум 300 баллов"
    localized = error_details_pb2.LocalizedMessage(locale="ru", message=sentence)
    error = error_from_status(
        code=grpc.StatusCode.FAILED_PRECONDITION,
        message="from the call",
        trailing_metadata=[(STATUS_DETAILS_KEY, packed(exceeds_maximum(), localized))],
    )
    assert (error.locale, error.localized_message) == ("ru", sentence)
    assert error.reason == "EXCEEDS_MAXIMUM"


def test_without_a_localized_message_the_fields_are_empty() -> None:
    error = error_from_status(
        code=grpc.StatusCode.FAILED_PRECONDITION,
        message="from the call",
        trailing_metadata=[(STATUS_DETAILS_KEY, packed(exceeds_maximum()))],
    )
    assert (error.locale, error.localized_message) == ("", "")


def test_the_language_goes_as_accept_language_before_the_token() -> None:
    from loyalty.client.channel import ChannelConfig

    config = ChannelConfig(token="t", language="en;q=0.5, ru")
    assert config.call_metadata() == (
        ("accept-language", "en;q=0.5, ru"),
        ("authorization", "Bearer t"),
    )
    assert ChannelConfig().call_metadata() == ()
