"""Reliability tests: what they measured is printed at the end of the run (never asserted)."""

from collections.abc import Callable

import pytest

_MEASURED: list[str] = []


@pytest.fixture
def measured() -> Callable[[str], None]:
    """Record one line for the summary at the end of the run (and print it)."""

    def record(line: str) -> None:
        print(line)
        _MEASURED.append(line)

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _MEASURED:
        terminalreporter.section("reliability: measured")
        for line in _MEASURED:
            terminalreporter.write_line(line)
