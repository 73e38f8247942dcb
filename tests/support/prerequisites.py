"""The one rule for a test whose prerequisite is missing: it fails under CI=true, else skips.

PostgreSQL, a throwaway cluster, openssl, Node, Go: on a developer's machine a missing one
skips the tests that need it; CI (CI=true) installs them all first (.ci/run), so there a
missing one is a broken CI and the test fails. Every such check ends in `missing()`.
"""

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(what: str) -> NoReturn:
    """Fail the test under CI=true, skip it elsewhere; `what` says what is missing and why."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: this test must run)")
    pytest.skip(what)
