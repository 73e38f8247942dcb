"""Every command block of the README and of docs/ that claims an output prints it.

A claim is a fenced `sh` (or `python`) block followed, before the next command block,
by a fenced `text` block: the output, stdout and stderr together, must contain those
lines in that order. In a claimed line `…` stands for any text, and a line that is only
`…` for any number of lines. Each file's blocks run in order, as written, against a
fresh server of their own (SQLite, clock override on): `127.0.0.1:50051` and
`127.0.0.1:50052` in a block are that server, and so is `LOYALTY_SERVER`.
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.support.server import ROOT, ServerProcess

DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "clients").glob("*/README.md")),
]
COMMANDS = {"sh": ["bash", "-e", "-o", "pipefail", "-c"], "python": [sys.executable, "-c"]}
ADDRESSES = ("127.0.0.1:50051", "127.0.0.1:50052")


@dataclass(frozen=True)
class Claim:
    line: int  # of the command block, 1-based
    language: str
    script: str
    output: str


def claims(path: Path) -> list[Claim]:
    """The claims of a Markdown file: a `text` block right after a command block, or after
    it and one paragraph (saying what the output shows)."""
    found: list[Claim] = []
    command: tuple[int, str, str] | None = None
    paragraphs = 0
    for token in MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8")):
        if token.type == "paragraph_open":
            paragraphs += 1
        if (token.nesting == 1 and token.type != "paragraph_open") or paragraphs > 1:
            command = None  # a heading, a list, a second paragraph: no longer its output
        if token.type != "fence":
            continue
        language = token.info.split()[0] if token.info.strip() else ""
        line = token.map[0] + 1 if token.map else 0
        if language in COMMANDS:
            command, paragraphs = (line, language, token.content), 0
        elif language == "text" and command is not None:
            found.append(Claim(*command, output=token.content))
            command = None
        else:
            command = None
    return found


def pattern(output: str) -> re.Pattern[str]:
    """The claimed lines as a regex over the actual output (`…`: anything)."""
    parts = []
    for line in output.rstrip("\n").splitlines():
        if line.strip() in ("…", "..."):
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        text = ".*?".join(re.escape(piece) for piece in line.rstrip().split("…"))
        parts.append(rf"[ \t]*{text}[ \t]*\n")
    return re.compile("".join(parts))


def run(claim: Claim, server: ServerProcess) -> str:
    script = claim.script
    for address in ADDRESSES:
        script = script.replace(address, server.address)
    if not (ROOT / ".venv" / "bin" / "activate").exists():  # a run outside `make install`
        script = script.replace(". .venv/bin/activate\n", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env["LOYALTY_SERVER"] = server.address
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [*COMMANDS[claim.language], script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=300, check=False,
    )  # fmt: skip
    return done.stdout + ("" if done.stdout.endswith("\n") else "\n")


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"  # the server is tested on both backends elsewhere; these are the docs


DOCUMENTED = [(path, claims(path)) for path in DOCUMENTS]


@pytest.mark.parametrize(
    "path", [path for path, found in DOCUMENTED if found], ids=lambda p: str(p.relative_to(ROOT))
)
def test_the_documents_commands_print_what_they_claim(path: Path, tmp_path: Path) -> None:
    server = ServerProcess(f"sqlite:///{tmp_path / 'docs.sqlite3'}", log_path=tmp_path / "log")
    server.start()
    failures = []
    try:
        for claim in claims(path):
            printed = run(claim, server)
            if not pattern(claim.output).search(printed):
                failures.append(
                    f"{path.relative_to(ROOT)}:{claim.line}: claimed\n{claim.output}"
                    f"printed\n{printed}"
                )
    finally:
        server.stop()
    assert not failures, "\n\n".join(failures)


def test_the_readme_claims_something() -> None:
    assert claims(ROOT / "README.md"), "the README shows no command with its output"
