"""Reads run in one read-only REPEATABLE READ transaction on PostgreSQL (server/store/db.py).

All the statements of a read see one snapshot (docs/rules.md §7); a quote of a one-tier
program's account without holds is the one read sent alone, from the event loop
(server/store/loop_pool.py, tests/integration/test_loop_reads.py).
"""

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection

from server.store.db import Database, create_database_engine
from server.store.migrate import migrate
from tests.support.databases import fresh_postgres

pytestmark = pytest.mark.postgres

ISOLATION = (
    "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')"
)


@pytest.fixture
def database() -> Iterator[Database]:
    with fresh_postgres() as url:
        engine = create_database_engine(url, pool_size=1)
        migrate(engine)
        yield Database(engine)
        engine.dispose()


def test_a_read_runs_in_a_read_only_repeatable_read_transaction(database: Database) -> None:
    def work(connection: Connection) -> tuple[str, str]:
        first = connection.exec_driver_sql(ISOLATION).one()
        began = connection.exec_driver_sql("SELECT now()").scalar()
        again = connection.exec_driver_sql("SELECT now()").scalar()
        assert began == again  # both statements in one transaction
        return first[0], first[1]

    assert database.read(work) == ("repeatable read", "on")
