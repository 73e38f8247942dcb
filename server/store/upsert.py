"""`INSERT … ON CONFLICT` for whichever backend the connection talks to."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Executable, Table
from sqlalchemy.dialects import postgresql, sqlite


class PerDialect:
    """A statement built once per backend (the hot path reuses constructs, never rebuilds them).

    `build` gets the dialect's `insert` function; the values come as bound parameters.
    """

    def __init__(self, build: Callable[[Callable[[Table], Any]], Executable]) -> None:
        self._built = {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}

    def __call__(self, connection: Connection) -> Executable:
        return self._built[connection.dialect.name]
