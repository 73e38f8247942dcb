"""The ceiling: a grpc.aio server on the service's stack that answers QuoteRedemption at once.

It parses the same request message (gRPC deserializes it before the handler runs) and
returns an empty response, so its figures are what Python gRPC alone costs on this machine.
`python -m bench.echo 127.0.0.1:PORT`
"""

import asyncio
import signal
import sys
from typing import Any

import grpc

from loyalty.v1 import redemption_service_pb2 as pb
from loyalty.v1 import redemption_service_pb2_grpc as pb_grpc
from server import event_loop


class Echo(pb_grpc.RedemptionServiceServicer):
    async def QuoteRedemption(  # type: ignore[override]
        self, request: pb.QuoteRedemptionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.QuoteRedemptionResponse:
        return pb.QuoteRedemptionResponse()


async def serve(listen: str) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], maximum_concurrent_rpcs=None)
    pb_grpc.add_RedemptionServiceServicer_to_server(Echo(), server)
    server.add_insecure_port(listen)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print("serving", flush=True)
    await stopping.wait()
    await server.stop(1)


if __name__ == "__main__":
    event_loop.run(serve(sys.argv[1]))  # the service's loop (server/event_loop.py)
