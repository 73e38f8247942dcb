"""`INSERT … ON CONFLICT` for whichever backend the connection talks to."""

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_for(connection: Connection, table: Table) -> Any:
    """The dialect's insert construct, which knows `on_conflict_do_nothing/update`."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
