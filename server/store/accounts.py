"""The account row: the lock every mutation takes first, and the debt it carries."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from server.store.hot import Hot, const
from server.store.schema import accounts

_a = accounts.c


def _locking(insert: Any) -> Any:
    return (
        insert(accounts)
        .values(
            program_id=bindparam("program_id"),
            customer_id=bindparam("customer_id"),
            created_at=bindparam("created_at"),
        )
        .on_conflict_do_update(
            index_elements=[_a.program_id, _a.customer_id],
            set_={"version": _a.version + const(1)},
        )
        .returning(_a.debt_points)
    )


# One statement creates the account if missing and locks its row: the upsert's DO UPDATE
# takes the row lock on PostgreSQL (SQLite's BEGIN IMMEDIATE already serializes writers).
_lock = Hot(_locking(postgresql.insert), sqlite=_locking(sqlite.insert))
_set_debt = (
    update(accounts)
    .where(_a.program_id == bindparam("p_id"), _a.customer_id == bindparam("c_id"))
    .values(debt_points=bindparam("debt_points"))
)


def lock_account(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> int:
    """Create the account if missing and lock its row until commit; returns its debt."""
    params = {"program_id": program_id, "customer_id": customer_id, "created_at": now}
    ((debt,),) = _lock.rows(connection, params)
    return int(debt)


def set_debt(
    connection: Connection, *, program_id: str, customer_id: str, debt_points: int
) -> None:
    connection.execute(
        _set_debt, {"p_id": program_id, "c_id": customer_id, "debt_points": debt_points}
    )
