"""Typed store errors: a row that a UNIQUE key or primary key already holds.

Recognised by the driver's error code (SQLSTATE 23505 on PostgreSQL, the extended result
code on SQLite), never by the text of the message; each insert that can collide knows
which key it collides on, so the error says what already exists.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError

_UNIQUE_VIOLATION = "23505"
_SQLITE_DUPLICATES = {sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE}


class Duplicate(Exception):
    """The row exists already (committed by a concurrent transaction)."""


class DuplicateOrder(Duplicate):
    """orders: the order was recorded meanwhile (by another customer's call)."""


class DuplicateRedemption(Duplicate):
    """redemptions: the order got a live redemption meanwhile."""


class DuplicateAccrual(Duplicate):
    """accruals: the order got an accrual meanwhile."""


def is_unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _UNIQUE_VIOLATION:
        return True
    return getattr(orig, "sqlite_errorcode", None) in _SQLITE_DUPLICATES


@contextmanager
def duplicates_as(kind: type[Duplicate], *, tables: tuple[str, ...] = ()) -> Iterator[None]:
    """Inside: a unique violation becomes `kind`; any other integrity error stays as it is.

    With `tables`, only a violation PostgreSQL reports on one of them does (a statement that
    inserts into several tables at once: the rows that say what exists already).
    """
    try:
        yield
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        diag = getattr(exc.orig, "diag", None)
        reported = getattr(diag, "table_name", None)
        if tables and reported is not None and reported not in tables:
            raise
        raise kind(str(exc.orig)) from exc
