"""Sampling profiles of the server under load (py-spy), and the heaviest frames in one.

`python -m bench --profile ...` records one collapsed-stack file per cell into
OUT/profiles/; `python -m bench.profile FILE` prints where the samples fell: by own time
and by inclusive time, with the idle samples (threads waiting) left out.
"""

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

IDLE = ("select (selectors.py", "_worker (concurrent/futures/thread.py", "wait (threading.py",
        "poll (", "epoll", "_run_once (asyncio/base_events.py")  # fmt: skip


def record(pid: int, *, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    """Start py-spy on `pid` and its children for `seconds`; None when py-spy is missing."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--subprocesses",
         "--duration", str(max(1, int(seconds))), "--rate", "200", "--gil",
         "--format", "raw", "--nonblocking", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return stack.split(";"), int(count)


def summarize(path: Path, *, top: int = 30) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        frames, count = _frames(line)
        if any(marker in frames[-1] for marker in IDLE):
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    out = [f"{path.name}: {total} busy samples", "", "own time:"]
    out += [f"{n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    out += ["", "inclusive:"]
    out += [f"{n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(summarize(Path(name)))
