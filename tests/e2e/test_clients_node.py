"""The generated Node client runs the README's scenario against a real server.

`make node-build` installs clients/node's packages from its lockfile (npm ci)
and compiles the client and examples/scenario.ts; the scenario asserts every
number itself (worked out by hand in its header) and exits 1 on a mismatch.
"""

import pytest

from tests.support.server import ServerProcess
from tests.support.toolchains import make, require_tools, run_scenario

SCENARIO = "clients/node/dist/examples/scenario.js"


@pytest.fixture(scope="session")
def node_scenario() -> str:
    require_tools("node", "npm", install_hint="install Node.js 18+ and npm")
    make("node-build")
    return SCENARIO


def test_grant_quote_apply_partial_reverse_account(
    server: ServerProcess, node_scenario: str
) -> None:
    out = run_scenario(["node", node_scenario, "--server", server.address, "--lang", "en"])
    assert out.splitlines() == [
        "grant: balance 500",
        "grant again: replayed true",
        "quote: tier base, max 300 points, pays 1000000, bound by BINDING_CONSTRAINT_TIER_CAP",
        # docs/rules.md §10: accept-language en; the numbers as above
        "quote says: The Basic tier lets points pay up to 3% of RUB10,000.00: 300 points",
        "refused: EXCEEDS_MAXIMUM (en) You asked for 301 points, but this cart takes at most "
        "300 points",
        "apply: 300 points, balance 200",
        "reverse: 150 points back, balance 350",
        'account: 350 spendable, tier base, by source {"loyalty":350}',
        "scenario OK",
    ]
