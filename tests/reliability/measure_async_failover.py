"""What a failover loses with asynchronous replication (issue 18): a measurement.

Not collected by `make test` (the file name does not start with `test_`); run it
with `make failover-async`. The drill of tests/reliability/failover_drill.py on a
primary whose standby is asynchronous:

* streaming: the standby follows as closely as it can (here: loopback), and the
  primary is killed under load;
* standby away: the standby is stopped, the primary answers 30 more calls without
  it (a standby cut off by the network, or down, which asynchronous replication
  does not wait for), then the primary is killed and the stale standby promoted.

Each prints the calls answered OK before the kill, how many of them the new
primary has, how many it lost, and the flows a loss broke. The new primary must
still be consistent: `reconcile` is clean.
"""

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.failover_drill import (
    AS_OF,
    found_once,
    new_customers,
    run_drill,
    serve_on_both,
)
from tests.reliability.load import assert_reconciles
from tests.support.throwaway_cluster import replication_pair

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

STANDBY_AWAY = 30  # calls answered while the standby is away


@pytest.mark.parametrize("standby_away", [0, STANDBY_AWAY], ids=["streaming", "standby-away"])
def test_asynchronous_failover_measures_what_can_be_lost(
    tmp_path: Path, measured: Callable[[str], None], standby_away: int
) -> None:
    customers = new_customers()
    with replication_pair(synchronous=False) as (primary, standby):
        server = serve_on_both(primary, standby, tmp_path)
        try:
            stats, drill = run_drill(
                primary, standby, server, customers, tolerate_loss=True,
                standby_away=standby_away,
            )  # fmt: skip
        finally:
            server.stop()
        before = drill.answered_before_kill
        found = found_once(standby.url("failover"), before)
        assert found <= set(before)
        # Whatever the standby missed, it holds a consistent prefix of the primary's history.
        reconciled = assert_reconciles(server.database_url, AS_OF)
    lost = sorted(set(before) - found)
    kind = "standby away" if standby_away else "streaming"
    measured(
        f"failover, asynchronous replication, {kind}: {len(before)} calls answered OK before "
        f"the kill, {len(found)} found on the new primary, {len(lost)} lost {lost[:3]}; "
        f"{len(drill.broken_flows)} flows broken by a loss; {drill.timings()}; "
        f"whole load: {stats.describe()}; {reconciled}"
    )
