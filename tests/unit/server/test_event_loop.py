"""The servers' event loop (server/event_loop.py): uvloop where it is installed."""

import asyncio

import uvloop

from server import event_loop


def test_run_runs_the_coroutine_on_uvloop() -> None:
    async def which() -> type[asyncio.AbstractEventLoop]:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    assert event_loop.run(which()) is uvloop.Loop


def test_new_loop_is_uvlooped_and_runs_what_it_is_given() -> None:
    loop = event_loop.new_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, result=7)) == 7
    finally:
        loop.close()
