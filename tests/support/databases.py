"""Databases for tests: a SQLite file, or a fresh PostgreSQL database per use.

PostgreSQL tests fail (never skip) when CI=true and the server is missing.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

ADMIN_URL = os.environ.get(
    "LOYALTY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin_connection() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


def require_postgres() -> None:
    """Fail under CI, skip elsewhere, when PostgreSQL cannot be reached."""
    try:
        with _admin_connection():
            return
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
    pytest.skip(message)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; yields its URL."""
    require_postgres()
    name = f"loyalty_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_url(backend: str, directory: Path) -> Iterator[str]:
    """A fresh database of `backend` ("sqlite" or "postgres"); yields its URL."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'loyalty.sqlite3'}"
    elif backend == "postgres":
        with fresh_postgres() as url:
            yield url
    else:
        raise ValueError(backend)
