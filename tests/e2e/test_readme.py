"""The README's "Calling it" commands, run as written against a real server.

The README addresses `make run`'s server (127.0.0.1:50051) and, for `--as-of`,
one with clock override on 127.0.0.1:50052; here both are the test server
(LOYALTY_SERVER, and the explicit address swapped). The quote table the
README shows must be exactly what the CLI prints.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ROOT, ServerProcess

README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## Calling it") : README.index("### From Python")]
BLOCKS = re.findall(r"```(sh|text)\n(.*?)```", SECTION, flags=re.S)
SHELL = [body for kind, body in BLOCKS if kind == "sh"]
QUOTE_TABLE = next(body for kind, body in BLOCKS if kind == "text")


@pytest.fixture(scope="module")
def backend() -> str:
    """`make run`'s database: SQLite (the server itself is tested on both elsewhere)."""
    return "sqlite"


def run(script: str, server: ServerProcess) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env["LOYALTY_SERVER"] = server.address
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = script.replace("127.0.0.1:50052", server.address)
    if not (ROOT / ".venv" / "bin" / "activate").exists():  # a test run outside `make`
        script = script.replace(". .venv/bin/activate\n", "")
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_the_scenario_block_prints_the_quote_shown(server: ServerProcess) -> None:
    scenario = SHELL[0]
    assert "loyalty reverse" in scenario
    result = run(scenario, server)
    assert result.returncode == 0, result.stderr
    assert QUOTE_TABLE in result.stdout
    assert "balance after: 200 points spendable" in result.stdout
    assert "points returned     150" in result.stdout
    assert "  spendable    350" in result.stdout
    assert "3 entries, sum +350" in result.stdout
    again = run(scenario, server)  # every mutation names its request id: a replay
    assert again.returncode == 0 and "balance after: 200 points spendable" in again.stdout


@pytest.mark.parametrize("index", [1, 3])
def test_the_other_blocks_succeed(server: ServerProcess, index: int) -> None:
    # [1]: promo and denco quotes, --json; [3]: --as-of, an accrual maturing
    result = run(SHELL[index], server)
    assert result.returncode == 0, result.stderr
    if index == 3:
        assert "pending      300" in result.stdout and "spendable    300" in result.stdout


def test_the_error_block_exits_1_with_what_the_readme_shows(server: ServerProcess) -> None:
    assert run(SHELL[0], server).returncode == 0  # c-42's points, as in the README's order
    shown = [line.removeprefix("# ") for line in SHELL[2].splitlines() if line.startswith("#")]
    command = "\n".join(line for line in SHELL[2].splitlines() if not line.startswith("#"))
    result = run(command, server)
    assert result.returncode == 1
    assert result.stderr.splitlines() == shown
