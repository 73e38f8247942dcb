"""The event loop every server process runs on: uvloop (libuv's loop, written in C).

A call crosses the event loop several times (gRPC's completions, the database's sockets,
the worker threads' answers), and asyncio's own loop does its bookkeeping in Python.
Counted with `python -m bench.instructions` (docs/benchmarks.md), uvloop takes 8 % off a
quote's instructions, 4 % off an apply's and 31 % off the bare gRPC echo's. gRPC's
asyncio API runs on any asyncio loop. Where uvloop is not installed (it does not build on
Windows), asyncio's loop runs the same code.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows
    uvloop = None  # type: ignore[assignment]


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop where it is installed."""
    if uvloop is None:  # pragma: no cover - Windows
        return asyncio.run(main)
    return uvloop.run(main)


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind `run` uses."""
    if uvloop is None:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
