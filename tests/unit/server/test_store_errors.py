"""Typed duplicates: a UNIQUE or primary-key violation becomes the store's error, nothing else."""

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from server.store.errors import DuplicateOrder, duplicates_as


def test_a_unique_violation_is_typed_and_a_check_violation_is_not() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE t (k TEXT PRIMARY KEY, u TEXT UNIQUE, n INT CHECK (n >= 0))")
        )
        connection.execute(text("INSERT INTO t VALUES ('a', 'x', 1)"))
        with pytest.raises(DuplicateOrder), duplicates_as(DuplicateOrder):
            connection.execute(text("INSERT INTO t VALUES ('a', 'y', 1)"))  # primary key
        with pytest.raises(DuplicateOrder), duplicates_as(DuplicateOrder):
            connection.execute(text("INSERT INTO t VALUES ('b', 'x', 1)"))  # UNIQUE
        with pytest.raises(IntegrityError) as caught, duplicates_as(DuplicateOrder):
            connection.execute(text("INSERT INTO t VALUES ('c', 'z', -1)"))  # CHECK
        assert not isinstance(caught.value, DuplicateOrder)
