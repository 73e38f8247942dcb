"""The account row: the lock every mutation takes first, and the debt it carries."""

from datetime import datetime

from sqlalchemy import Connection, select, update

from server.store.schema import accounts
from server.store.upsert import insert_for


def lock_account(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> int:
    """Create the account if missing and lock its row until commit; returns its debt.

    One statement does both: the upsert's DO UPDATE takes the row lock on
    PostgreSQL (SQLite's BEGIN IMMEDIATE already serializes writers).
    """
    statement = (
        insert_for(connection, accounts)
        .values(program_id=program_id, customer_id=customer_id, created_at=now)
        .on_conflict_do_update(
            index_elements=[accounts.c.program_id, accounts.c.customer_id],
            set_={"version": accounts.c.version + 1},
        )
        .returning(accounts.c.debt_points)
    )
    return int(connection.execute(statement).scalar_one())


def read_debt(connection: Connection, *, program_id: str, customer_id: str) -> int:
    debt = connection.execute(
        select(accounts.c.debt_points).where(
            accounts.c.program_id == program_id, accounts.c.customer_id == customer_id
        )
    ).scalar_one_or_none()
    return int(debt or 0)


def set_debt(
    connection: Connection, *, program_id: str, customer_id: str, debt_points: int
) -> None:
    connection.execute(
        update(accounts)
        .where(accounts.c.program_id == program_id, accounts.c.customer_id == customer_id)
        .values(debt_points=debt_points)
    )
