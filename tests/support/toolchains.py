"""Other languages' toolchains for the generated-client tests: present, or fail under CI.

Like PostgreSQL, a missing toolchain skips these tests on a developer's
machine and fails them when CI=true (tests/support/prerequisites.py): CI
installs Node and Debian's Go packages first (.ci/run).
"""

import shutil
import subprocess
from collections.abc import Sequence

import pytest

from tests.support.prerequisites import missing as prerequisite_missing
from tests.support.server import ROOT


def require_tools(*names: str, install_hint: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    prerequisite_missing(f"{', '.join(missing)} not found; {install_hint}")


def make(target: str, *, timeout: float = 600) -> None:
    """`make TARGET` at the repository's root; fails the test with its output."""
    result = subprocess.run(
        ["make", "--no-print-directory", target], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"make {target} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")


def run_scenario(command: Sequence[str], *, timeout: float = 120) -> str:
    """Run a built scenario; fails the test with its output unless it exits 0. Returns stdout."""
    result = subprocess.run(
        list(command), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{command[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout
