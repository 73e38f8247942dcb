"""What every servicer shares: the clock at the edge, the worker pool, error translation."""

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import grpc
from google.protobuf.message import Message

from server.api.convert import instant
from server.api.errors import to_status
from server.service.deps import Deps
from server.service.errors import ClockOverrideDisabled
from server.store.db import DatabaseUnavailable

P = ParamSpec("P")
T = TypeVar("T")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class Readiness:
    """Whether the database answered and is migrated; calls before that are UNAVAILABLE."""

    def __init__(self) -> None:
        self.ready = False


class Edge:
    """Runs use cases (synchronous SQLAlchemy) on a bounded pool, off the event loop."""

    def __init__(
        self,
        deps: Deps,
        *,
        pool: ThreadPoolExecutor,
        readiness: Readiness,
        allow_clock_override: bool,
    ) -> None:
        self.deps = deps
        self.pool = pool
        self.readiness = readiness
        self.allow_clock_override = allow_clock_override

    def now(self, request: Message) -> datetime:
        """`now` enters once per call, here: the server clock, or `as_of` when allowed."""
        if request.HasField("as_of"):
            if not self.allow_clock_override:
                raise ClockOverrideDisabled()
            return instant(request.as_of)  # type: ignore[attr-defined]
        return datetime.now(UTC)

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if not self.readiness.ready:
            raise DatabaseUnavailable("the server is starting: the database is not ready yet")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(work, *args, **kwargs))


def rpc(method: Handler) -> Handler:
    """Turn any error a handler raises into its status from the one error table."""

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await method(self, request, context)
        except Exception as exc:
            status = to_status(exc)
            await context.abort(status.code, status.details, status.trailing_metadata)

    return handler
