"""Alembic environment: migrates the connection the server hands over (or the URL given)."""

from alembic import context
from sqlalchemy import create_engine

from server.store.db import normalize_url
from server.store.schema import metadata

config = context.config


def run_migrations(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = create_engine(normalize_url(config.get_main_option("sqlalchemy.url") or ""))
    with engine.connect() as fresh:
        run_migrations(fresh)
