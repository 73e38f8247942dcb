"""Integration fixtures: the ledger invariants, checked on the database after every test."""

from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.integration.invariants import check_invariants


class InvariantWatch:
    """Which (database, instant) pairs to check once the test is over.

    A test module that sets `AS_OF` (the instant its calls use) gets its
    database checked at that instant automatically; a test that uses other
    instants or another database adds them with `at()`, or checks at once
    with `check()` (for a database that will be gone before teardown).
    """

    def __init__(self) -> None:
        self.pending: list[tuple[str, datetime]] = []

    def at(self, url: str, instant: datetime) -> None:
        self.pending.append((url, instant))

    def check(self, url: str, instant: datetime) -> None:
        checked = check_invariants(url, instant)
        assert checked.accounts > 0, f"nothing to check in {url}: the invariant would be vacuous"


@pytest.fixture(autouse=True)
def invariants(request: pytest.FixtureRequest) -> Iterator[InvariantWatch]:
    watch = InvariantWatch()
    as_of = getattr(request.module, "AS_OF", None)
    if as_of is not None and "db_url" in request.fixturenames:
        watch.at(request.getfixturevalue("db_url"), as_of)
    yield watch
    for url, instant in watch.pending:
        watch.check(url, instant)
