"""The options the reliability work added: --db-lock-timeout and `reconcile --as-of`."""

from datetime import UTC, datetime

import pytest

from server.config import parse


def test_the_lock_timeout_has_a_default_an_environment_twin_and_must_be_positive() -> None:
    assert parse([], env={})[1].db_lock_timeout == 5.0
    assert parse([], env={"LOYALTY_DB_LOCK_TIMEOUT": "0.25"})[1].db_lock_timeout == 0.25
    assert parse(["--db-lock-timeout", "2"], env={})[1].db_lock_timeout == 2.0
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit):
            parse(["--db-lock-timeout", bad], env={})


def test_reconcile_takes_as_of_only_with_clock_override() -> None:
    command, config = parse(
        ["reconcile", "--allow-clock-override", "--as-of", "2033-01-12T10:00:00+00:00"], env={}
    )
    assert command == "reconcile"
    assert config.as_of == datetime(2033, 1, 12, 10, 0, tzinfo=UTC)
    assert parse(["reconcile"], env={})[1].as_of is None
    with pytest.raises(SystemExit):
        parse(["reconcile", "--as-of", "2033-01-12T10:00:00+00:00"], env={})
    with pytest.raises(SystemExit):
        parse(["serve", "--allow-clock-override", "--as-of", "2033-01-12T10:00:00+00:00"], env={})
