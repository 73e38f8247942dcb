"""Idempotency records: the request id claimed in the same transaction as its effect."""

from datetime import datetime

from sqlalchemy import Connection, select, update

from pricing.errors import IdempotencyKeyReused
from server.store.schema import idempotency_keys
from server.store.upsert import insert_for


def claim(
    connection: Connection,
    *,
    program_id: str,
    request_id: str,
    method: str,
    fingerprint: bytes,
    now: datetime,
) -> bytes | None:
    """Claim `request_id`, or return the answer stored by the call that claimed it first.

    On PostgreSQL a concurrent claim of the same id waits here until the
    first transaction ends: its answer if it committed, the claim if it
    rolled back. Reusing the id for a different request is refused.
    """
    k = idempotency_keys.c
    claimed = connection.execute(
        insert_for(connection, idempotency_keys)
        .values(
            program_id=program_id,
            request_id=request_id,
            method=method,
            fingerprint=fingerprint,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(k.request_id)
    ).first()
    if claimed is not None:
        return None
    row = connection.execute(
        select(k.method, k.fingerprint, k.response).where(
            k.program_id == program_id, k.request_id == request_id
        )
    ).one()
    if row.method != method or bytes(row.fingerprint) != fingerprint or row.response is None:
        raise IdempotencyKeyReused(request_id)
    return bytes(row.response)


def record_answer(
    connection: Connection, *, program_id: str, request_id: str, response: bytes
) -> None:
    k = idempotency_keys.c
    connection.execute(
        update(idempotency_keys)
        .where(k.program_id == program_id, k.request_id == request_id)
        .values(response=response)
    )
