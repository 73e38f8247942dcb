"""The generated Go client runs the README's scenario against a real server.

`make go-build` lays out clients/go/vendor from Debian's Go packages
(clients/go/debian-vendor.sh) and builds cmd/scenario offline; the scenario
asserts every number itself (worked out by hand in its header) and exits 1 on
a mismatch.
"""

import pytest

from tests.support.server import ROOT, ServerProcess
from tests.support.toolchains import make, require_tools, run_scenario

SCENARIO = ROOT / "clients" / "go" / "bin" / "scenario"
DEBIAN = (
    "apt-get install golang-go golang-google-grpc-dev golang-google-genproto-dev "
    "golang-github-golang-protobuf-1-5-dev (see .ci/run)"
)


@pytest.fixture(scope="session")
def go_scenario() -> str:
    require_tools("go", install_hint=DEBIAN)
    make("go-build")
    return str(SCENARIO)


def test_grant_quote_apply_partial_reverse_account(server: ServerProcess, go_scenario: str) -> None:
    out = run_scenario([go_scenario, "-server", server.address, "-lang", "en"])
    assert out.splitlines() == [
        "grant: balance 500",
        "grant again: replayed true",
        "quote: tier base, max 300 points, pays 1000000, bound by BINDING_CONSTRAINT_TIER_CAP",
        # docs/rules.md §10: accept-language en; the numbers as above
        "quote says: The Basic tier lets points pay up to 3% of RUB10,000.00: 300 points",
        "refused: EXCEEDS_MAXIMUM (en) You asked for 301 points, but this cart takes at most "
        "300 points",
        "apply: 300 points, state REDEMPTION_STATE_APPLIED, balance 200",
        "reverse: 150 points back, state REDEMPTION_STATE_PARTIALLY_REVERSED, balance 350",
        "account: 350 spendable, tier base, by source map[loyalty:350]",
        "scenario OK",
    ]
