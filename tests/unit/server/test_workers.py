"""Workers: database work off the event loop (server/api/workers.py)."""

import asyncio
import threading

import pytest

from server.api.workers import Workers


@pytest.fixture
def workers() -> object:
    pool = Workers(2, name="test")
    yield pool
    pool.shutdown(wait=True)


def test_call_runs_the_work_on_a_worker_thread_and_returns_its_result(workers: Workers) -> None:
    async def main() -> tuple[int, str]:
        return await workers.call(lambda: (6 * 7, threading.current_thread().name))

    answer, thread = asyncio.run(main())
    assert answer == 42 and thread.startswith("test_")


def test_call_raises_what_the_work_raised(workers: Workers) -> None:
    def broken() -> None:
        raise KeyError("missing")

    async def main() -> None:
        await workers.call(broken)

    with pytest.raises(KeyError, match="missing"):
        asyncio.run(main())


def test_work_whose_call_was_cancelled_while_queued_never_runs(workers: Workers) -> None:
    ran: list[str] = []
    release = threading.Event()

    async def main() -> None:
        # Both threads busy until released: the third call waits in the queue.
        busy = [asyncio.ensure_future(workers.call(release.wait)) for _ in range(2)]
        queued = asyncio.ensure_future(workers.call(lambda: ran.append("queued")))
        await asyncio.sleep(0.05)
        queued.cancel()
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*busy)
        await workers.call(lambda: None)  # the queue has moved past the cancelled item
        assert queued.cancelled()

    asyncio.run(main())
    assert ran == []


def test_it_is_an_executor_for_run_in_executor(workers: Workers) -> None:
    async def main() -> int:
        return await asyncio.get_running_loop().run_in_executor(workers, sum, [1, 2, 3])

    assert asyncio.run(main()) == 6
    assert workers.submit(pow, 2, 10).result(timeout=5) == 1024


def test_shutdown_cancels_queued_work_and_refuses_more() -> None:
    pool = Workers(1, name="test")
    started, release = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return release.wait()

    running = pool.submit(hold)
    queued = pool.submit(lambda: "never")
    assert started.wait(timeout=5)  # the one thread is busy: the second item stays queued
    stopper = threading.Thread(target=pool.shutdown, kwargs={"cancel_futures": True})
    stopper.start()
    release.set()
    stopper.join(timeout=5)
    assert not stopper.is_alive()
    assert running.result(timeout=5) is True
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
