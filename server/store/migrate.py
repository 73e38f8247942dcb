"""Creating or migrating the schema with Alembic, safely from several processes at once."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: serializes concurrent starts (several workers, several hosts).
_MIGRATION_LOCK = 7_351_120_513


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (creating it on an empty database)."""
    config = alembic_config()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Alembic alters a SQLite table by copying it, and dropping the old copy fails
            # while other tables' foreign keys refer to it. The keys are off for the
            # migration (a PRAGMA that only works outside a transaction) and checked, all
            # of them, before it commits.
            _sqlite_pragma(connection, "foreign_keys = OFF")
        try:
            with connection.begin():
                if not sqlite:
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite:
                    _check_foreign_keys(connection)
        finally:
            if sqlite:
                _sqlite_pragma(connection, "foreign_keys = ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    """A PRAGMA on the driver's connection itself: SQLAlchemy would open a transaction first."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA {pragma}")


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


def is_migrated(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
