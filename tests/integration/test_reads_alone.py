"""A read likely to be one statement is sent alone on PostgreSQL (server/store/db.py).

A quote of an account without holds, in a program of one tier, reads one statement (the
account's snapshot): it is sent outside any transaction, since one statement sees one
snapshot by itself, and saves BEGIN and COMMIT. A read that turns out to need a second
statement stops there and runs again whole in a read-only REPEATABLE READ transaction,
so that all of its statements see the same snapshot, as every other read does.
"""

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Connection, select

from server.store.db import Database, create_database_engine
from server.store.hot import Hot, const
from server.store.migrate import migrate
from tests.support.databases import fresh_postgres

pytestmark = pytest.mark.postgres

# Where a statement runs: its transaction's isolation and its start (`now()`), and whether
# that transaction began with this statement.
WHERE = "SELECT current_setting('transaction_isolation'), now(), now() = statement_timestamp()"
_hot_one = Hot(select(const(1).label("one")))


@pytest.fixture
def database() -> Iterator[Database]:
    with fresh_postgres() as url:
        engine = create_database_engine(url, pool_size=1)
        migrate(engine)
        yield Database(engine)
        engine.dispose()


def _where(connection: Connection) -> tuple[str, datetime, bool]:
    isolation, began, began_with_it = connection.exec_driver_sql(WHERE).one()
    return str(isolation), began, bool(began_with_it)


def test_a_read_of_one_statement_runs_it_alone(database: Database) -> None:
    runs: list[tuple[str, datetime, bool]] = []

    def work(connection: Connection) -> None:
        runs.append(_where(connection))

    database.read(work, likely_one_statement=True)
    # Once, outside a transaction: autocommit's read committed, a transaction of its own.
    assert [(isolation, alone) for isolation, _, alone in runs] == [("read committed", True)]


def test_a_second_statement_runs_the_read_again_in_one_snapshot(database: Database) -> None:
    runs: list[list[tuple[str, datetime, bool]]] = []

    def work(connection: Connection) -> int:
        runs.append([_where(connection)])
        runs[-1].append(_where(connection))
        return len(runs)

    assert database.read(work, likely_one_statement=True) == 2
    assert len(runs[0]) == 1 and runs[0][0][0] == "read committed"  # stopped at its second
    # Again whole, in one read transaction: the second statement in the first's snapshot.
    (first, began, _), (second, began_too, alone) = runs[1]
    assert (first, second, began_too, alone) == ("repeatable read", "repeatable read", began, False)


def test_a_hot_statement_counts_as_a_statement_too(database: Database) -> None:
    """Hot statements go to psycopg directly, not through SQLAlchemy: they count the same."""
    runs: list[str] = []

    def work(connection: Connection) -> None:
        _hot_one.rows(connection, {})
        runs.append(_where(connection)[0])

    database.read(work, likely_one_statement=True)
    assert runs == ["repeatable read"]


def test_other_reads_run_in_a_read_transaction_from_the_start(database: Database) -> None:
    runs: list[str] = []
    database.read(lambda connection: runs.append(_where(connection)[0]))
    assert runs == ["repeatable read"]
