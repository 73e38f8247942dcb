"""Reads sent from the event loop itself, on PostgreSQL (psycopg's asyncio connections).

A quote reads one statement (the account's snapshot, server/store/snapshot.py). Handed
to a worker thread like every other call, it paid for the hand-off twice and for the
threads' turns at the GIL: about 35 context switches a quote against the echo server's 6,
a quarter of the server's CPU in the kernel (docs/benchmarks.md). Awaited on the event
loop instead, on a connection of this pool, it costs an asyncio wait.

The pool's connections are autocommit (one statement is its own snapshot) and set up
like the engine's (server/store/db.py: UTC, the lock timeout, the same hosts, so a
failover URL finds the primary the same way). A read the database does not answer here
goes to a worker thread (`LoopReadFailed`), whose engine handles outages as every other
call's; `reset` drops every connection (the health watch calls it when the database stops
answering or is demoted, like the engine's `dispose`).
"""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Engine

from server.store.db import DatabaseObserver, connect_args
from server.store.hot import Hot

# Seconds a read waits for a connection of this pool before it goes to a worker thread
# instead: a quote's statement takes well under a millisecond, so a longer wait means the
# database cannot be reached (the pool keeps trying to connect in the background).
POOL_TIMEOUT = 0.5


class LoopReadFailed(Exception):
    """The database did not answer a read sent from the event loop (see `LoopPool.rows`)."""


class LoopPool:
    """Up to `size` asyncio connections to the engine's database, for reads sent alone."""

    def __init__(
        self,
        engine: Engine,
        *,
        size: int,
        observer: DatabaseObserver,
        lock_timeout: float | None = None,
        timeout: float = POOL_TIMEOUT,
    ) -> None:
        _, kwargs = engine.dialect.create_connect_args(engine.url)
        self._kwargs = {**kwargs, **connect_args(lock_timeout), "autocommit": True}
        self._size = size
        self._observer = observer
        self._timeout = timeout
        self._pool = self._new_pool()
        self._closing: set[asyncio.Task[None]] = set()

    def _new_pool(self) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            kwargs=self._kwargs,
            min_size=1,
            max_size=self._size,
            open=False,
            timeout=self._timeout,
            name="loop-reads",
        )

    async def open(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await asyncio.gather(self._pool.close(), *self._closing)

    async def reset(self) -> None:
        """Drop every connection: the next read connects afresh (to the primary). Reads
        still on the old ones finish there (a dropped one fails and is retried)."""
        old, self._pool = self._pool, self._new_pool()
        await self._pool.open(wait=False)
        closing = asyncio.get_running_loop().create_task(old.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def rows(self, hot: Hot, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        """The statement's rows, sent alone as a prepared statement (instants in UTC).

        Raises `LoopReadFailed` when the database could not answer it here: a pooled
        connection it dropped (it restarted, or terminated it: then every pooled connection
        is dropped too), or no connection within `timeout`. The caller reads on a worker
        thread then, whose engine retries a dropped connection once and reports a database
        out of reach as `DatabaseUnavailable` at once.
        """
        dropped = False
        try:
            async with self._pool.connection() as connection:
                try:
                    cursor = await connection.execute(hot.sql, params, prepare=True)
                    return hot.in_utc(await cursor.fetchall(), connection.info.timezone)
                finally:
                    dropped = connection.closed
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            self._observer.retried("connection")
            if dropped:
                await self.reset()
            raise LoopReadFailed(str(exc)) from exc
