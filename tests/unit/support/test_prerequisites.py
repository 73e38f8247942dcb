"""The rule for a missing prerequisite: under CI=true the test fails, elsewhere it is skipped."""

import pytest

from tests.support import databases
from tests.support.prerequisites import missing

NOBODY_LISTENS = "postgresql://postgres@127.0.0.1:1/postgres"  # port 1: refused at once


def test_under_ci_a_missing_prerequisite_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"^node not found \(CI=true"):
        missing("node not found")


@pytest.mark.parametrize("ci", [None, "", "false", "1"])
def test_elsewhere_a_missing_prerequisite_skips(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=r"^node not found$"):
        missing("node not found")


def test_under_ci_an_unreachable_postgresql_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(databases, "ADMIN_URL", NOBODY_LISTENS)
    with pytest.raises(pytest.fail.Exception, match="is unreachable"):
        databases.require_postgres()


def test_elsewhere_an_unreachable_postgresql_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(databases, "ADMIN_URL", NOBODY_LISTENS)
    with pytest.raises(pytest.skip.Exception, match="is unreachable"):
        databases.require_postgres()
