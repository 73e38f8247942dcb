"""`python -m bench.instructions` counts a real server's instructions per call (callgrind)."""

import shutil
from pathlib import Path

from bench.instructions import callgrind, measure
from bench.payloads import Templates
from bench.processes import Server
from tests.support.prerequisites import missing


def test_the_echo_servers_calls_are_counted_after_the_warm_up(tmp_path: Path) -> None:
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        missing("valgrind not found; apt-get install valgrind (see .ci/run)")
    out = tmp_path / "callgrind.echo"
    echo = Server.echo(log_path=tmp_path / "echo.log", under=callgrind(out)).start()
    try:
        bodies = [
            Templates.build(program_id="denco", points=1).quote_for(f"c{i}") for i in range(5)
        ]
        count = measure(echo, out, target="echo", workload="quote", bodies=bodies, warmup=2)
    finally:
        echo.stop()
    assert (count.target, count.workload, count.calls) == ("echo", "quote", 3)
    # A call of the echo server costs some hundred thousand instructions (0.37 M measured on
    # uvloop); start-up, hundreds of millions, is left out by zeroing after the warm-up.
    assert 10_000 < count.per_call < 20_000_000
