"""An in-process AccountService that fails as told, and records what it received."""

import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import account_service_pb2_grpc


@dataclass
class Received:
    request: account_pb.GrantPointsRequest
    metadata: dict[str, str]


@dataclass
class FakeAccounts(account_service_pb2_grpc.AccountServiceServicer):
    """GrantPoints answers `failures` in turn (a status code each), then succeeds."""

    failures: list[grpc.StatusCode] = field(default_factory=list)
    hold: threading.Event | None = None  # when given, each call waits until it is set
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def GrantPoints(
        self, request: account_pb.GrantPointsRequest, context: grpc.ServicerContext
    ) -> account_pb.GrantPointsResponse:
        with self.lock:
            self.received.append(Received(request, dict(context.invocation_metadata())))  # type: ignore[arg-type]
            failure = self.failures.pop(0) if self.failures else None
        if self.hold is not None:
            self.hold.wait(timeout=60)
        if failure is not None:
            context.abort(failure, f"attempt {len(self.received)} fails")
        return account_pb.GrantPointsResponse(points=request.points, balance_after=request.points)

    def request_ids(self) -> list[str]:
        return [r.request.request_id for r in self.received]


@contextmanager
def serving(
    servicer: FakeAccounts, credentials: grpc.ServerCredentials | None = None
) -> Iterator[str]:
    """Serve `servicer` on a free loopback port; yields the target."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    account_service_pb2_grpc.add_AccountServiceServicer_to_server(servicer, server)
    address = "127.0.0.1:0" if credentials is None else "localhost:0"
    port = (
        server.add_insecure_port(address)
        if credentials is None
        else server.add_secure_port(address, credentials)
    )
    server.start()
    try:
        yield f"{'127.0.0.1' if credentials is None else 'localhost'}:{port}"
    finally:
        server.stop(grace=None)


def is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4
    except ValueError:
        return False
