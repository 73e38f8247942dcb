"""The threads that run database work off the event loop, and a cheap way to await it.

Every call's use case is synchronous (SQLAlchemy, psycopg) and runs on one of these
threads. `loop.run_in_executor` on a `ThreadPoolExecutor` chains two futures across the
threads and takes a lock and a condition per call; `Workers.call` puts the function on a
`queue.SimpleQueue` and awaits one asyncio future, which the thread completes through
`call_soon_threadsafe` (a call that does nothing: 47 → 32 µs of CPU alone, 18.6 → 8.6 µs
eight at a time, docs/benchmarks.md).
"""

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")

# A work item: the function that runs it on a worker thread, and its three arguments.
_Item = tuple[Callable[[Any, Any, Any], None], Any, Any, Any]


class Workers(Executor):
    """`size` threads taking work from one queue, started at once and kept until shutdown."""

    def __init__(self, size: int, *, name: str = "db") -> None:
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    async def call(self, work: Callable[[], T]) -> T:
        """`work()` on a worker thread; not started if the caller is cancelled first."""
        if self._closed:
            raise RuntimeError("cannot schedule new work after shutdown")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((_for_loop, loop, future, work))
        return await future

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """`Executor.submit`, for `loop.run_in_executor` and other callers."""
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future[T] = Future()
        self._queue.put((_for_future, future, fn, (args, kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more work; drop what is queued (`cancel_futures`); end the threads."""
        self._closed = True
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    _cancel(item)
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _work(self) -> None:
        get = self._queue.get
        while (item := get()) is not None:
            run, first, second, third = item
            run(first, second, third)


def _for_loop(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[T], work: Callable[[], T]
) -> None:
    if future.cancelled():  # the call was cancelled while this waited in the queue
        return
    try:
        result = work()
    except BaseException as exc:
        _on_loop(loop, _fail, future, exc)
    else:
        _on_loop(loop, _succeed, future, result)


def _on_loop(loop: asyncio.AbstractEventLoop, then: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits the answer
        loop.call_soon_threadsafe(then, *args)


def _for_future(future: Future[T], fn: Callable[..., T], arguments: Any) -> None:
    if not future.set_running_or_notify_cancel():
        return
    args, kwargs = arguments
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as exc:
        future.set_exception(exc)


def _succeed(future: asyncio.Future[T], result: T) -> None:
    if not future.cancelled():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(exc)


def _cancel(item: _Item) -> None:
    run, first, second, _ = item
    if run is _for_loop:
        _on_loop(first, second.cancel)
    else:
        first.cancel()
