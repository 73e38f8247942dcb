"""The account row: the lock every mutation takes first, and the debt it carries."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from server.store.hot import Hot, const
from server.store.schema import accounts

_a = accounts.c


def locking(insert: Any, *, after: Any = None) -> Any:
    """The upsert that creates the account if missing and locks its row, returning its debt;
    with `after` (a CTE), only when that returned a row (server/store/opening.py)."""
    values = {
        name: bindparam(name, type_=accounts.c[name].type)
        for name in ("program_id", "customer_id", "created_at")
    }
    if after is None:
        statement = insert(accounts).values(**values)
    else:
        statement = insert(accounts).from_select(
            list(values), select(*values.values()).select_from(after)
        )
    return statement.on_conflict_do_update(
        index_elements=[_a.program_id, _a.customer_id],
        set_={"version": _a.version + const(1)},
    ).returning(_a.debt_points)


# One statement creates the account if missing and locks its row: the upsert's DO UPDATE
# takes the row lock on PostgreSQL (SQLite's BEGIN IMMEDIATE already serializes writers).
_lock = Hot(locking(postgresql.insert), sqlite=locking(sqlite.insert))
_set_debt = Hot(
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
    _set_debt.run(connection, {"p_id": program_id, "c_id": customer_id, "debt_points": debt_points})
