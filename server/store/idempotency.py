"""Idempotency records: the request id claimed in the same transaction as its effect."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from server.store.hot import Hot
from server.store.schema import idempotency_keys

_k = idempotency_keys.c


def claiming(insert: Any) -> Any:
    """The insert that claims a request id (returns it; nothing when it was claimed)."""
    return (
        insert(idempotency_keys)
        .values(
            program_id=bindparam("program_id"),
            request_id=bindparam("request_id"),
            method=bindparam("method"),
            fingerprint=bindparam("fingerprint"),
            created_at=bindparam("created_at"),
        )
        .on_conflict_do_nothing()
        .returning(_k.request_id)
    )


_claim = Hot(claiming(postgresql.insert), sqlite=claiming(sqlite.insert))
_stored = select(_k.method, _k.fingerprint, _k.response).where(
    _k.program_id == bindparam("program_id"), _k.request_id == bindparam("request_id")
)
_answer = Hot(
    update(idempotency_keys)
    .where(_k.program_id == bindparam("p_id"), _k.request_id == bindparam("r_id"))
    .values(response=bindparam("response"))
)


@dataclass(frozen=True)
class EarlierClaim:
    """What the call that claimed a request id first left: its method, request and answer."""

    method: str
    fingerprint: bytes
    response: bytes | None  # None: no answer was stored with the claim


def claim(
    connection: Connection,
    *,
    program_id: str,
    request_id: str,
    method: str,
    fingerprint: bytes,
    now: datetime,
) -> EarlierClaim | None:
    """Claim `request_id` (None), or return what the call that claimed it first stored.

    On PostgreSQL a concurrent claim of the same id waits here until the
    first transaction ends: its answer if it committed, the claim if it
    rolled back.
    """
    claimed = _claim.rows(
        connection,
        {
            "program_id": program_id, "request_id": request_id, "method": method,
            "fingerprint": fingerprint, "created_at": now,
        },
    )  # fmt: skip
    if claimed:
        return None
    return earlier_claim(connection, program_id=program_id, request_id=request_id)


def earlier_claim(connection: Connection, *, program_id: str, request_id: str) -> EarlierClaim:
    """What the call that claimed `request_id` stored (it is claimed: an insert found it)."""
    row = connection.execute(_stored, {"program_id": program_id, "request_id": request_id}).one()
    response = None if row.response is None else bytes(row.response)
    return EarlierClaim(row.method, bytes(row.fingerprint), response)


def record_answer(
    connection: Connection, *, program_id: str, request_id: str, response: bytes
) -> None:
    _answer.run(connection, {"p_id": program_id, "r_id": request_id, "response": response})
