"""Waiting for something to happen, by polling with a deadline (never a fixed sleep).

The deadline only bounds a wait that would otherwise hang; it is generous on purpose
and says nothing about how fast anything must be.
"""

import asyncio
import time
from collections.abc import Callable

POLL_SECONDS = 0.02


def wait_until(condition: Callable[[], object], *, what: str, timeout: float = 60) -> None:
    """Return once `condition()` is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_SECONDS)


async def until(condition: Callable[[], object], *, what: str, timeout: float = 60) -> None:
    """`wait_until` for a coroutine: the event loop runs on while it waits."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(POLL_SECONDS)
