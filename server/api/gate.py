"""What a call passes before any servicer sees it: the caller's token, and a body that decodes.

One server interceptor. With tokens configured it authenticates every call outside the
open services (health, reflection) from its `authorization: Bearer` metadata and checks
the role may call the method — before the request is even decoded. Every handler gets a
deserializer that turns bytes protobuf cannot parse (corrupt wire format, a string that is
not UTF-8) into INVALID_ARGUMENT, where gRPC alone would answer UNKNOWN. Refusals of our
RPCs take the same road as any of their errors: the one table, metrics, the access log.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from server.api.auth import Tokens
from server.api.edge import Edge, caller_role
from server.api.errors import to_status
from server.api.refusals import CallRefused, MalformedRequest

Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[[Any, Context], Awaitable[Any]]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic in the stubs only

OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


class Undecodable:
    """Stands in for a request whose bytes did not parse."""

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type


def tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`deserialize`, answering Undecodable instead of raising."""
    owner = getattr(deserialize, "__self__", None)
    message_type = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "message")

    def read(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception:  # whatever the parser raises, the bytes were the caller's
            return Undecodable(message_type)

    return read


class Gate(grpc.aio.ServerInterceptor):
    def __init__(self, edge: Edge, *, tokens: Tokens, services: frozenset[str]) -> None:
        self.edge = edge
        self.tokens = tokens
        self.services = services  # ours: counted in metrics and the access log
        self._wrapped: dict[tuple[str, str | None], Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        service = method[1:].rpartition("/")[0]
        role = None
        if self.tokens and service not in OPEN_SERVICES:
            metadata = handler_call_details.invocation_metadata
            try:
                role = self.tokens.authorize(method, metadata or ())
            except CallRefused as refusal:
                return grpc.unary_unary_rpc_method_handler(self._refusal(method, refusal))
        key = (method, role and role.value)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None  # unknown method: UNIMPLEMENTED (not cached: callers pick names)
            wrapped = self._wrapped[key] = self._wrap(method, handler, key[1])
        return wrapped

    def _wrap(self, method: str, handler: Handler, role: str | None) -> Handler:
        """`handler` with a tolerant deserializer and a guarded behavior (once per method, role)."""
        if handler.request_deserializer is None:
            return handler
        read = tolerant(handler.request_deserializer)
        write = handler.response_serializer
        if handler.unary_unary is not None:
            guarded = self._guarded(method, handler.unary_unary, role)
            return grpc.unary_unary_rpc_method_handler(guarded, read, write)
        # The open services' streams: health's Watch writes through its context, reflection's
        # ServerReflectionInfo is an async generator over its requests.
        inner = handler.unary_stream
        if inner is not None and not inspect.isasyncgenfunction(inner):
            return grpc.unary_stream_rpc_method_handler(
                self._guarded(method, inner, None), read, write
            )
        inner = handler.stream_stream
        if inner is not None and inspect.isasyncgenfunction(inner):
            return grpc.stream_stream_rpc_method_handler(
                self._guarded_stream(method, inner), read, write
            )
        return handler

    def _guarded(self, method: str, inner: Callable[..., Any], role: str | None) -> Behavior:
        async def behavior(request: Any, context: Context) -> Any:
            reset = caller_role.set(role)
            try:
                if isinstance(request, Undecodable):
                    await self._refuse(method, MalformedRequest(request.message_type), context)
                return await inner(request, context)
            finally:
                caller_role.reset(reset)

        return behavior

    def _guarded_stream(self, method: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        async def behavior(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            async def checked() -> AsyncIterator[Any]:
                async for request in requests:
                    if isinstance(request, Undecodable):
                        await self._refuse(method, MalformedRequest(request.message_type), context)
                    yield request

            async for response in inner(checked(), context):
                yield response

        return behavior

    def _refusal(self, method: str, refusal: Exception) -> Behavior:
        async def behavior(_request: bytes, context: Context) -> None:
            reset = caller_role.set(getattr(refusal, "role", None))
            try:
                await self._refuse(method, refusal, context)
            finally:
                caller_role.reset(reset)

        return behavior

    async def _refuse(self, method: str, refusal: Exception, context: Context) -> None:
        service, _, name = method[1:].rpartition("/")
        if service in self.services:
            await self.edge.answer(service, name, None, context, _raiser(refusal))
        status = to_status(refusal, self.edge.texts(context, None))
        await context.abort(status.code, status.details, status.trailing_metadata)


def _raiser(error: Exception) -> Callable[[], Awaitable[None]]:
    async def work() -> None:
        raise error

    return work
