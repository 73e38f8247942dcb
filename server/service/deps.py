"""What every use case needs: the store (units of work), the programs and the metrics."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from pricing.errors import ProgramNotFound
from pricing.program import Program
from server.metrics import Metrics
from server.service.commands import Idempotency
from server.service.ports import Outcome, Request, Store, UnitOfWork
from server.service.replay import mark_replayed
from server.service.sql import SqlStore
from server.store.db import Database
from server.store.loop_pool import LoopPool
from server.store.secrets import secret as stored_secret

R = TypeVar("R")


@dataclass(frozen=True)
class Deps:
    db: Database | None
    programs: Mapping[str, Program]
    metrics: Metrics = field(default_factory=Metrics)
    # The seam: units of work on `db` unless a test hands in another (tests/unit/service/).
    store: Store = field(default=None)  # type: ignore[assignment]
    # Reads sent alone from the event loop (PostgreSQL: server/store/loop_pool.py), if any.
    loop_pool: LoopPool | None = field(default=None, compare=False, repr=False)
    # Keys read once from the database (server/store/secrets.py), by name.
    secrets: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.store is None:
            assert self.db is not None, "Deps needs a database or a store"
            object.__setattr__(self, "store", SqlStore(self.db))

    def secret(self, name: str) -> bytes:
        found = self.secrets.get(name)
        if found is None:
            assert self.db is not None, "a key is read from the database"
            db = self.db
            found = self.secrets[name] = db.read(lambda c: stored_secret(c, name))
        return found

    def program(self, program_id: str) -> Program:
        try:
            return self.programs[program_id]
        except KeyError:
            raise ProgramNotFound(program_id) from None

    def once(
        self,
        method: str,
        program_id: str,
        key: Idempotency,
        *,
        now: datetime,
        effect: Callable[[UnitOfWork], R],
        render: Callable[[R], bytes],
        locks: tuple[str, str] | None = None,
    ) -> Outcome[R]:
        """Run a mutation exactly once per request id (docs/rules.md §7); replays are counted.

        `locks`: the (customer, order) the effect locks first (`Request.locks`)."""
        request = Request(program_id, key.request_id, method, key.fingerprint, locks)
        outcome = self.store.once(request, now=now, effect=effect, render=render)
        if outcome.result is None:
            self.metrics.replays.labels(request.method).inc()
            mark_replayed()
        return outcome
