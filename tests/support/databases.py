"""Databases for tests: a SQLite file, or a fresh PostgreSQL database per use.

A missing PostgreSQL fails the test under CI=true and skips it elsewhere
(tests/support/prerequisites.py).
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support.prerequisites import missing

ADMIN_URL = os.environ.get(
    "LOYALTY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin_connection() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


def require_postgres() -> None:
    """Return if PostgreSQL answers; else `missing` (fail under CI=true, skip elsewhere)."""
    try:
        with _admin_connection():
            return
    except psycopg.OperationalError as exc:
        missing(f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}")


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
