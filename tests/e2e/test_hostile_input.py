"""Hostile input over gRPC, on both backends: nothing a caller sends is UNKNOWN or INTERNAL.

* Hypothesis requests for every RPC (tests/e2e/proto_strategies.py): each answer is OK or an
  error carrying exactly one `loyalty` ErrorInfo with a reason of the ErrorReason enum;
  RESOURCE_EXHAUSTED exactly when the request is over the 4 MiB default limit.
* Hypothesis byte strings as request bodies (random, and valid requests truncated, with a byte
  overwritten, or with a string field that is not UTF-8 appended): bytes protobuf rejects are
  exactly INVALID_ARGUMENT MALFORMED_REQUEST, the rest are judged like any request; so are
  bytes that do not decode sent to health's Watch and to reflection.
* The size limit to the byte; a cart of a thousand broken lines still gets a readable error;
  an id of 100,000 characters leaves 256 of them in the access log.

Afterwards the server is still SERVING and its log holds no error.
"""

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loyalty.v1 import account_service_pb2, cart_pb2, errors_pb2, redemption_service_pb2
from loyalty.v1 import redemption_service_pb2 as pb
from tests.e2e.builders import TIMEOUT, quote_of_size
from tests.e2e.proto_strategies import messages, near_valid
from tests.e2e.rpc_errors import decode
from tests.support.prerequisites import in_ci
from tests.support.server import ServerProcess

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the server's default --max-message-bytes
REQUESTS_PER_RPC = 120
BODIES_PER_RPC = 80
REASONS = {n.removeprefix("ERROR_REASON_") for n in errors_pb2.ErrorReason.keys()}  # noqa: SIM118
REASONS.discard("UNSPECIFIED")
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}

METHODS: dict[str, MethodDescriptor] = {
    method.name: method
    for module in (redemption_service_pb2, account_service_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
}
HEALTH_CHECK = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]
HYPOTHESIS = settings(
    deadline=None,
    database=None,
    derandomize=in_ci(),  # CI replays the same examples every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def request_class(method: MethodDescriptor) -> type[Message]:
    return GetMessageClass(method.input_type)


def raw_call(server: ServerProcess, method: MethodDescriptor) -> Callable[..., Any]:
    """The method with no serializers: bytes in, bytes out."""
    assert server.channel is not None
    return server.channel.unary_unary(path(method))


def answer(call: Callable[..., Any], body: bytes) -> tuple[grpc.StatusCode, grpc.RpcError | None]:
    try:
        call(body, timeout=TIMEOUT)
    except grpc.RpcError as error:
        return error.code(), error  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, None


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason; asserts the status carries exactly one, in our domain."""
    failure = decode(error)
    assert failure.domain == "loyalty", failure
    assert failure.reason in REASONS, failure
    return failure.reason


@pytest.mark.parametrize("name", list(METHODS))
def test_generated_requests_never_answer_unknown_or_internal(
    server: ServerProcess, name: str
) -> None:
    method = METHODS[name]
    call = raw_call(server, method)
    sent: list[int] = []

    @settings(HYPOTHESIS, max_examples=REQUESTS_PER_RPC)
    @given(messages(method.input_type))
    def check(request: Message) -> None:
        body = request.SerializeToString()
        sent.append(len(body))
        code, error = answer(call, body)
        assert code not in NEVER, (code, error)
        if len(body) > MAX_MESSAGE_BYTES:
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (len(body), code)
            event("over the size limit: RESOURCE_EXHAUSTED")
        elif error is not None:
            event(f"{code.name} {reason_of(error)}")
        else:
            event("OK")

    check()
    assert len(sent) >= REQUESTS_PER_RPC


def not_utf8(field_number: int) -> st.SearchStrategy[bytes]:
    """A length-delimited field `field_number` whose bytes are not UTF-8."""
    payload = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"ok\x80", b"\xf8\x88\x80"])
    return payload.map(lambda raw: bytes([field_number << 3 | 2, len(raw)]) + raw)


def bodies(method: MethodDescriptor) -> st.SearchStrategy[bytes]:
    """Random bytes, and valid requests broken in the ways a wire can break them."""
    valid = near_valid(method.input_type).map(lambda m: m.SerializeToString())
    strings = [f.number for f in method.input_type.fields if f.type == f.TYPE_STRING]

    @st.composite
    def broken(draw: st.DrawFn) -> bytes:
        body = draw(valid)
        how = draw(st.sampled_from(["truncate", "overwrite", "not utf-8", "append"]))
        if how == "truncate" and body:
            return body[: draw(st.integers(0, len(body) - 1))]
        if how == "overwrite" and body:
            at = draw(st.integers(0, len(body) - 1))
            return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
        if how == "not utf-8" and strings:
            return body + draw(not_utf8(draw(st.sampled_from(strings))))
        return body + draw(st.binary(min_size=1, max_size=16))

    return st.one_of(st.binary(max_size=256), broken())


@pytest.mark.parametrize("name", [*METHODS, "grpc.health.v1.Health/Check"])
def test_random_bodies_are_malformed_or_judged_never_unknown(
    server: ServerProcess, name: str
) -> None:
    method = METHODS.get(name, HEALTH_CHECK)
    call = raw_call(server, method)
    parse = request_class(method).FromString
    sent: list[bytes] = []

    @settings(HYPOTHESIS, max_examples=BODIES_PER_RPC)
    @given(bodies(method))
    def check(body: bytes) -> None:
        sent.append(body)
        code, error = answer(call, body)
        assert code not in NEVER, (code, error)
        try:
            parse(body)
        except DecodeError:
            assert error is not None and code == grpc.StatusCode.INVALID_ARGUMENT, (code, body)
            assert reason_of(error) == "MALFORMED_REQUEST"
            event("undecodable: INVALID_ARGUMENT MALFORMED_REQUEST")
            return
        if method is HEALTH_CHECK:  # not ours: grpc's health service, no ErrorInfo
            assert code in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND), code
        elif error is not None:
            assert reason_of(error) != "MALFORMED_REQUEST"
        event(f"decodable: {code.name}")

    check()
    assert len(sent) >= BODIES_PER_RPC


@pytest.mark.parametrize("name", [*METHODS, "grpc.health.v1.Health/Check"])
def test_a_string_that_is_not_utf8_is_invalid_argument(server: ServerProcess, name: str) -> None:
    """Field 1 of every request is a string; gRPC's own decoding answered UNKNOWN for this."""
    method = METHODS.get(name, HEALTH_CHECK)
    code, error = answer(raw_call(server, method), b"\x0a\x01\xff")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and error is not None
    failure = decode(error)
    assert failure.reason == "MALFORMED_REQUEST"
    assert failure.metadata == {"message_type": method.input_type.full_name}
    assert failure.fields == []


def test_the_open_streams_answer_invalid_argument_too(server: ServerProcess) -> None:
    """Health's Watch and reflection (streams, outside the loyalty services): not UNKNOWN either."""
    assert server.channel is not None
    watch = server.channel.unary_stream("/grpc.health.v1.Health/Watch")
    reflect = server.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )
    for call in (lambda: list(watch(b"\x0a\x01\xff", timeout=TIMEOUT)),
                 lambda: list(reflect(iter([b"\x0a\x01\xff"]), timeout=TIMEOUT))):  # fmt: skip
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert decode(refused.value).reason == "MALFORMED_REQUEST"


def test_the_size_limit_holds_to_the_byte(server: ServerProcess) -> None:
    call = raw_call(server, METHODS["QuoteRedemption"])
    at_limit = quote_of_size(MAX_MESSAGE_BYTES).SerializeToString()
    assert len(at_limit) == MAX_MESSAGE_BYTES
    code, error = answer(call, at_limit)  # read and judged: the promo code is too long
    assert code == grpc.StatusCode.INVALID_ARGUMENT and error is not None
    assert decode(error).fields == ["cart.promo_code", "cart.lines"]
    code, error = answer(call, quote_of_size(MAX_MESSAGE_BYTES + 1).SerializeToString())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max (4194305 vs. 4194304)" in error.details()  # type: ignore[union-attr]


def test_a_thousand_broken_lines_still_get_a_readable_error(server: ServerProcess) -> None:
    """Its status once outgrew the client's 8 KiB trailer limit: RESOURCE_EXHAUSTED, no details."""
    line = cart_pb2.CartLine(line_id="😀" * 256, quantity=0, unit_price_minor=-1)
    request = pb.QuoteRedemptionRequest(
        program_id="stomatorg",
        customer_id="c",
        cart=cart_pb2.Cart(currency="RUB", lines=[line] * 1000),
    )
    code, error = answer(raw_call(server, METHODS["QuoteRedemption"]), request.SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and error is not None
    failure = decode(error)
    assert failure.reason == "INVALID_REQUEST"
    assert failure.fields[:3] == [
        "cart.lines[0].quantity", "cart.lines[0].unit_price_minor", "cart.lines[1].quantity"
    ]  # fmt: skip
    assert 3 <= len(failure.fields) < 1000
    assert failure.message.startswith("cart.lines[0].quantity: must be > 0 (and ")
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None and len(status.SerializeToString()) < 4096


def test_an_id_of_100000_characters_leaves_256_in_the_access_log(server: ServerProcess) -> None:
    customer = "z" * 100_000
    request = account_service_pb2.GetAccountRequest(program_id="stomatorg", customer_id=customer)
    code, _ = answer(raw_call(server, METHODS["GetAccount"]), request.SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    deadline, mine = time.monotonic() + 10, []
    while not mine and time.monotonic() < deadline:
        lines = Path(server.log_path).read_text().splitlines()
        mine = [json.loads(text) for text in lines if '"customer_id": "zzzz' in text]
        time.sleep(0.05)
    assert [entry["customer_id"] for entry in mine] == ["z" * 256 + "…"]


def test_the_server_is_still_serving_and_logged_no_error(server: ServerProcess) -> None:
    assert server.health() == health_pb2.HealthCheckResponse.SERVING
    for text in Path(server.log_path).read_text().splitlines():
        entry = json.loads(text)
        assert entry["level"] in ("INFO", "WARNING"), entry
