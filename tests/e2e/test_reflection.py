"""Server reflection answers on grpc.reflection.v1 (asked first by current tools) and v1alpha."""

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as wire  # the same bytes as v1's messages

from tests.e2e.builders import TIMEOUT
from tests.support.server import ServerProcess

LOYALTY = {"loyalty.v1.AccountService", "loyalty.v1.RedemptionService"}
VERSIONS = ("grpc.reflection.v1", "grpc.reflection.v1alpha")


def ask(
    server: ServerProcess, version: str, request: wire.ServerReflectionRequest
) -> wire.ServerReflectionResponse:
    assert server.channel is not None
    info = server.channel.stream_stream(
        f"/{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=wire.ServerReflectionRequest.SerializeToString,
        response_deserializer=wire.ServerReflectionResponse.FromString,
    )
    (answer,) = info(iter([request]), timeout=TIMEOUT)
    return answer  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", VERSIONS)
def test_both_versions_list_the_services(server: ServerProcess, version: str) -> None:
    answer = ask(server, version, wire.ServerReflectionRequest(list_services=""))
    listed = {service.name for service in answer.list_services_response.service}
    assert listed >= LOYALTY | {
        "grpc.health.v1.Health",
        *(f"{v}.ServerReflection" for v in VERSIONS),
    }


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("symbol", "file_name"),
    [
        ("loyalty.v1.RedemptionService", "loyalty/v1/redemption_service.proto"),
        ("grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"),
    ],
)
def test_both_versions_describe_a_symbol(
    server: ServerProcess, version: str, symbol: str, file_name: str
) -> None:
    answer = ask(server, version, wire.ServerReflectionRequest(file_containing_symbol=symbol))
    assert answer.WhichOneof("message_response") == "file_descriptor_response", answer
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in answer.file_descriptor_response.file_descriptor_proto
    ]
    assert files[0].name == file_name
    assert symbol.rpartition(".")[2] in {service.name for service in files[0].service}


def test_an_unknown_symbol_is_not_found_on_v1(server: ServerProcess) -> None:
    answer = ask(
        server, "grpc.reflection.v1", wire.ServerReflectionRequest(file_containing_symbol="no.Such")
    )
    assert answer.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
