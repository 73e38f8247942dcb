"""Call any RPC of a running server by name, with a JSON request, as grpcurl does.

Nothing generated is imported: the services and messages are read from the server
through its reflection service, so this works for any gRPC server that serves
reflection (it asks grpc.reflection.v1alpha; the loyalty server also answers v1).

    python examples/grpc_call.py 127.0.0.1:50051 list
    python examples/grpc_call.py 127.0.0.1:50051 loyalty.v1.AccountService/GetAccount \\
        '{"programId": "stomatorg", "customerId": "c-42"}'
"""

import sys

import grpc
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def call(target: str, method: str, body: str) -> str:
    """The response of `method` ("package.Service/Method") to `body`, as JSON."""
    with grpc.insecure_channel(target) as channel:
        reflection = ProtoReflectionDescriptorDatabase(channel)
        if method == "list":
            return "\n".join(sorted(reflection.get_services()))
        service_name, _, method_name = method.partition("/")
        pool = descriptor_pool.DescriptorPool(reflection)
        found = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = GetMessageClass(found.input_type)
        response_class = GetMessageClass(found.output_type)
        request = json_format.Parse(body or "{}", request_class())
        rpc = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = rpc(request, timeout=10)
        return json_format.MessageToJson(response, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    print(call(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else ""))
