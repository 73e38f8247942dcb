"""Running a mutation exactly once per request id (SPEC §7)."""

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection

from server.store import idempotency
from server.store.db import Database

R = TypeVar("R")


def run_once(
    db: Database,
    *,
    program_id: str,
    request_id: str,
    method: str,
    fingerprint: bytes,
    now: datetime,
    effect: Callable[[Connection], R],
    render: Callable[[R], bytes],
) -> bytes:
    """Claim the request id, apply `effect`, store its rendered answer: one transaction.

    A replay of the same request returns the stored answer and changes
    nothing. A failed effect rolls back with its claim, so a retry runs anew.
    """

    def work(connection: Connection) -> bytes:
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
        answer = render(effect(connection))
        idempotency.record_answer(
            connection, program_id=program_id, request_id=request_id, response=answer
        )
        return answer

    return db.transact(work)
