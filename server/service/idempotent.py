"""Running a mutation exactly once per request id (docs/rules.md §7)."""

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import Connection

from server.service.deps import Deps
from server.store import idempotency

R = TypeVar("R")


class ReplayNote:
    """Whether a call's answer came from the idempotency record rather than from a new effect."""

    def __init__(self) -> None:
        self.replayed = False


# The current call's note: set by the edge for the length of a call (and carried to the worker
# thread with it), so the edge can mark a replayed answer without every use case passing it on.
replay_note: ContextVar[ReplayNote | None] = ContextVar("replay_note", default=None)


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """The answer to send, and the effect's result when this call made it (None: a replay)."""

    answer: bytes
    result: R | None


def run_once(
    deps: Deps,
    *,
    program_id: str,
    request_id: str,
    method: str,
    fingerprint: bytes,
    now: datetime,
    effect: Callable[[Connection], R],
    render: Callable[[R], bytes],
) -> Outcome[R]:
    """Claim the request id, apply `effect`, store its rendered answer: one transaction.

    A replay of the same request returns the stored answer and changes
    nothing. A failed effect rolls back with its claim, so a retry runs anew.
    """

    made: list[R] = []

    def work(connection: Connection) -> bytes:
        made.clear()  # a retried transaction starts over
        stored = idempotency.claim(
            connection,
            program_id=program_id,
            request_id=request_id,
            method=method,
            fingerprint=fingerprint,
            now=now,
        )
        if stored is not None:
            return stored
        result = effect(connection)
        answer = render(result)
        idempotency.record_answer(
            connection, program_id=program_id, request_id=request_id, response=answer
        )
        made.append(result)
        return answer

    answer = deps.db.transact(work)
    if not made:
        deps.metrics.replays.labels(method).inc()
        note = replay_note.get()
        if note is not None:
            note.replayed = True
    return Outcome(answer, made[0] if made else None)
