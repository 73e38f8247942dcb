"""What every servicer shares: the clock at the edge, the worker pool, error translation."""

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import grpc
from google.protobuf.message import Message
from prometheus_client import Counter, Histogram

from server import logs
from server.api.convert import instant
from server.api.errors import to_status
from server.api.workers import Workers
from server.metrics import Metrics
from server.service.deps import Deps
from server.service.errors import ClockOverrideDisabled, DatabaseUnavailable, call_deadline
from server.service.replay import ReplayNote, replay_note
from server.texts.texts import Languages, Texts

access = logging.getLogger(logs.ACCESS)

# Trailing metadata on an answer served from the idempotency record (docs/rules.md §7): the same
# answer as the first call's, and nothing was changed by this one.
REPLAYED_KEY = "loyalty-replayed"

P = ParamSpec("P")
T = TypeVar("T")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class Readiness:
    """Whether the database answered and is migrated; calls before that are UNAVAILABLE."""

    def __init__(self) -> None:
        self.ready = False


@dataclass
class _CallMetrics:
    """One method's metric children, resolved once rather than on every call."""

    started: Counter
    handling: Histogram
    by_code: dict[grpc.StatusCode, Counter]
    metrics: Metrics
    labels: tuple[str, str, str]

    def handled(self, code: grpc.StatusCode) -> Counter:
        child = self.by_code.get(code)
        if child is None:
            child = self.by_code[code] = self.metrics.handled.labels(*self.labels, code.name)
        return child


class Edge:
    """Runs use cases (synchronous SQLAlchemy) on a bounded pool, off the event loop."""

    def __init__(
        self,
        deps: Deps,
        *,
        pool: Workers,
        readiness: Readiness,
        allow_clock_override: bool,
        explanations: bool = True,
    ) -> None:
        self.deps = deps
        self.pool = pool
        self.readiness = readiness
        self.allow_clock_override = allow_clock_override
        self.languages = Languages(deps.programs)
        self.explanations = explanations  # off: answers without explanation texts
        self._calls: dict[tuple[str, str], _CallMetrics] = {}

    def calls(self, service: str, method: str) -> _CallMetrics:
        found = self._calls.get((service, method))
        if found is None:
            metrics = self.deps.metrics
            labels = ("unary", service, method)
            found = _CallMetrics(
                started=metrics.started.labels(*labels),
                handling=metrics.handling.labels(*labels),
                by_code={},
                metrics=metrics,
                labels=labels,
            )
            self._calls[(service, method)] = found
        return found

    def now(self, request: Message) -> datetime:
        """`now` enters once per call, here: the server clock, or `as_of` when allowed."""
        if request.HasField("as_of"):
            if not self.allow_clock_override:
                raise ClockOverrideDisabled()
            return instant(request.as_of)  # type: ignore[attr-defined]
        return datetime.now(UTC)

    def texts(self, context: grpc.aio.ServicerContext[Any, Any], program_id: str | None) -> Texts:
        """This call's texts: its accept-language, else the program's default (rules.md §10)."""
        return self.languages.texts(program_id, accept_language(context))

    async def answer(
        self,
        service: str,
        method: str,
        request: Message | None,
        context: grpc.aio.ServicerContext[Any, Any],
        work: Callable[[], Awaitable[T]],
    ) -> T:
        """Await `work`; an error leaves as its status from the one table. Counted and logged."""
        calls = self.calls(service, method)
        calls.started.inc()
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        # Each RPC runs in its own asyncio task, so this is this call's deadline only.
        call_deadline.set(deadline)
        note = ReplayNote()
        replay_note.set(note)
        try:
            result = await work()
            if note.replayed:
                context.set_trailing_metadata(((REPLAYED_KEY, "true"),))
            return result
        except asyncio.CancelledError:
            # The caller's deadline passed or it went away: gRPC cancels the handler, and
            # the call is counted and logged as what the caller saw, not as OK.
            # (gRPC's clock started a little before this handler's: allow for that.)
            expired = deadline is not None and time.monotonic() >= deadline - 0.05
            code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            status = to_status(exc, self.texts(context, getattr(request, "program_id", None)))
            code = status.code
            await context.abort(status.code, status.details, status.trailing_metadata)
        finally:
            elapsed = time.perf_counter() - start
            calls.handled(code).inc()
            calls.handling.observe(elapsed)
            access_log(method, request, code, elapsed)

    async def on_loop(
        self, work: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await `work` on the event loop itself (a read sent alone: server/store/loop_pool.py)."""
        self._ready()
        return await work(*args, **kwargs)

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`work` on a worker thread (server/api/workers.py), with the call's deadline."""
        self._ready()
        # The call's deadline goes with the work to its thread: the database bounds its
        # lock waits by it and does not start work the caller no longer waits for.
        deadline = call_deadline.get()
        note = replay_note.get()
        return await self.pool.call(
            functools.partial(_within_call, deadline, note, work, *args, **kwargs)
        )

    def _ready(self) -> None:
        if not self.readiness.ready:
            raise DatabaseUnavailable("the server is starting: the database is not ready yet")


def _within_call(
    deadline: float | None,
    note: ReplayNote | None,
    work: Callable[P, T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run `work` in a pool thread with the call's deadline and replay note set."""
    token = call_deadline.set(deadline)
    noted = replay_note.set(note)
    try:
        return work(*args, **kwargs)
    finally:
        replay_note.reset(noted)
        call_deadline.reset(token)


def accept_language(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The call's `accept-language` metadata, its values joined as one header ("" if none)."""
    values = [
        value
        for key, value in context.invocation_metadata() or ()
        if key == "accept-language" and isinstance(value, str)
    ]
    return ", ".join(values)


def rpc(method: Handler) -> Handler:
    """Every RPC: errors to their status from the one table, metrics, one access-log line."""
    name = method.__name__

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        edge: Edge = self.edge
        return await edge.answer(
            self.SERVICE, name, request, context, lambda: method(self, request, context)
        )

    return handler


# Request fields worth a log line: ids only, never cart contents or credentials. A caller
# may send megabytes in an id; the line keeps the first _LOGGED_ID_CHARS characters.
_LOGGED_IDS = ("program_id", "customer_id", "order_id", "request_id")
_LOGGED_ID_CHARS = 256

# The caller's role, set for the length of a call by the gate when tokens are configured.
caller_role: ContextVar[str | None] = ContextVar("caller_role", default=None)


def access_log(method: str, request: Message | None, code: grpc.StatusCode, elapsed: float) -> None:
    if not access.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "method": method,
        "status": code.name,
        "duration_ms": round(elapsed * 1000, 3),
    }
    role = caller_role.get()
    if role is not None:
        fields["role"] = role
    for name in _LOGGED_IDS:
        value = getattr(request, name, "")
        if value:
            cut = len(value) > _LOGGED_ID_CHARS
            fields[name] = value[:_LOGGED_ID_CHARS] + "…" if cut else value
    line = logs.access_line
    if line is None:
        access.info("rpc", extra=fields)
    else:
        line.write("rpc", fields)  # the same line, without a LogRecord (server/logs.py)
