"""Database URLs and errors: the multi-host form a failover needs, and the errors after which
the pool is dropped (docs/rules.md §12)."""

from dataclasses import dataclass

import pytest
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url

from server.store.db import failover_is_disconnect, normalize_url


def _psycopg_arguments(url: str) -> dict[str, object]:
    """What SQLAlchemy hands `psycopg.connect` for `url`."""
    _, arguments = PGDialect_psycopg().create_connect_args(make_url(normalize_url(url)))
    return dict(arguments)


def test_plain_urls_are_driven_by_psycopg_and_left_alone_otherwise() -> None:
    assert normalize_url("postgresql://u:p@db:5432/loyalty") == (
        "postgresql+psycopg://u:p@db:5432/loyalty"
    )
    assert normalize_url("postgres://db/loyalty") == "postgresql+psycopg://db/loyalty"
    assert normalize_url("sqlite:///var/loyalty.sqlite3") == "sqlite:///var/loyalty.sqlite3"
    assert normalize_url("postgresql+psycopg://u@/db?host=h1:1&host=h2:2") == (
        "postgresql+psycopg://u@/db?host=h1:1&host=h2:2"
    )


def test_the_specs_multi_host_url_reaches_libpq_as_lists_of_hosts_and_ports() -> None:
    url = "postgresql://loyalty:s3cret@h1:5432,h2:5433/loyalty?target_session_attrs=read-write"
    assert normalize_url(url) == (
        "postgresql+psycopg://loyalty:s3cret@/loyalty"
        "?host=h1%3A5432&host=h2%3A5433&target_session_attrs=read-write"
    )
    assert _psycopg_arguments(url) == {
        "dbname": "loyalty",
        "user": "loyalty",
        "password": "s3cret",
        "host": "h1,h2",
        "port": "5432,5433",
        "target_session_attrs": "read-write",
    }


def test_sqlalchemys_own_multi_host_form_works_the_same() -> None:
    url = "postgresql://u@/db?host=h1:5432&host=h2:5433&target_session_attrs=read-write"
    assert _psycopg_arguments(url) == {
        "dbname": "db",
        "user": "u",
        "host": "h1,h2",
        "port": "5432,5433",
        "target_session_attrs": "read-write",
    }


@pytest.mark.parametrize(
    ("url", "hosts", "ports"),
    [
        ("postgresql://h1,h2/db", "h1,h2", ","),  # libpq: an empty port is the default
        ("postgresql://h1,h2:6000/db", "h1,h2", ",6000"),
        ("postgres://u@10.0.0.1:5432,10.0.0.2:5432/db", "10.0.0.1,10.0.0.2", "5432,5432"),
    ],
)
def test_hosts_without_ports_and_addresses(url: str, hosts: str, ports: str) -> None:
    arguments = _psycopg_arguments(url)
    assert (arguments["host"], arguments["port"]) == (hosts, ports)


def test_the_password_of_a_multi_host_url_is_hidden_when_shown() -> None:
    shown = make_url(normalize_url("postgresql://u:s3cret@h1:1,h2:2/db")).render_as_string(
        hide_password=True
    )
    assert "s3cret" not in shown and "h1%3A1" in shown and "h2%3A2" in shown


class _Failed(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        self.sqlstate = sqlstate


@dataclass
class _Context:
    """The part of SQLAlchemy's ExceptionContext the failover listener reads and sets."""

    original_exception: BaseException
    is_disconnect: bool = False


@pytest.mark.parametrize(
    ("sqlstate", "disconnect"),
    [
        ("25006", True),  # read_only_sql_transaction: a demoted or fenced server
        ("57P01", True),  # admin_shutdown
        ("57P02", True),  # crash_shutdown
        ("57P03", True),  # cannot_connect_now
        ("08006", True),  # connection_failure
        ("08001", True),  # sqlclient_unable_to_establish_sqlconnection
        ("40001", False),  # serialization_failure: retried as a conflict, the pool kept
        ("40P01", False),  # deadlock_detected
        ("55P03", False),  # lock_not_available
        ("23505", False),  # unique_violation
        (None, False),  # no SQLSTATE: SQLAlchemy's own judgement stands
    ],
)
def test_the_errors_a_failover_causes_drop_the_pool(sqlstate: str | None, disconnect: bool) -> None:
    context = _Context(_Failed(sqlstate))
    failover_is_disconnect(context)  # type: ignore[arg-type]
    assert context.is_disconnect is disconnect
