"""Configurations the server will not serve with: it says why and exits 2 before listening.

Without tokens it listens only on loopback (docs/rules.md §9) unless told --insecure; token and TLS
files it cannot use stop it, and no message quotes a token. One case runs the real process;
the others call `server.main.main` in this process (starting Python and gRPC per case would
cost seconds each), which returns before it opens the database or a port.
"""

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from server.main import main
from tests.support.server import ROOT, ServerProcess

SECRET = "a-secret-token-that-must-never-be-printed"


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[None]:
    """main() installs its own handler on the root logger; put the test runner's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def start(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """`loyalty-server ARGS`, expected to refuse: its exit code and everything it printed."""
    for name in [k for k in os.environ if k.startswith("LOYALTY_")]:
        monkeypatch.delenv(name)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    database = tmp_path / "never-created.sqlite3"
    code = main(["--database-url", f"sqlite:///{database}", *args])
    assert not database.exists()
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def test_the_process_refuses_all_interfaces_without_tokens(tmp_path: Path) -> None:
    address = "0.0.0.0:0"  # refused before binding anything
    command = [sys.executable, "-m", "server.main", "--listen", address]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    done = subprocess.run(command, cwd=ROOT, env=clean, capture_output=True, timeout=60)
    assert done.returncode == 2, done
    assert f"refusing to serve on {address} without tokens" in done.stderr.decode()


@pytest.mark.parametrize("listen", ["[::]", "", "10.1.2.3", "db.example"])
def test_beyond_loopback_without_tokens_it_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, listen: str
) -> None:
    address = f"{listen}:0"  # refused before binding anything
    code, output = start(tmp_path, capsys, monkeypatch, env={"LOYALTY_LISTEN": address})
    assert code == 2, output
    assert f"refusing to serve on {address} without tokens" in output


def test_insecure_lets_it_serve_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    process = ServerProcess(
        f"sqlite:///{tmp_path / 'loyalty.sqlite3'}",
        log_path=tmp_path / "server.log",
        env={"LOYALTY_INSECURE": "1"},
        host="0.0.0.0",
    )
    process.start()  # waits for SERVING, reached over 127.0.0.1
    try:
        assert "serving on 0.0.0.0:" in process.log_path.read_text()
        assert "no tokens: every call allowed" in process.log_path.read_text()
    finally:
        assert process.stop() == 0


BAD_TOKENS = {
    "unknown role": (f'"{SECRET}" = "root"', "entry 1: the role must be one of"),
    "short token": ('"tiny-s3cr3t" = "admin"', "entry 1: a token must be 16 to 4096 characters"),
    "space in token": (f'"{SECRET} x" = "admin"', "entry 1: the token has characters"),
    "bad digest": ('"sha256:abc" = "admin"', "entry 1: a sha256: token must be 64"),
    "not TOML": (f'{SECRET} = = "admin"', "not valid TOML at line 1"),
    "twice": (f'"{SECRET}" = "admin"\n"sha256:{"0" * 64}" = "checkout"', None),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_bad_token_file_stops_it_without_quoting_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    text, reason = BAD_TOKENS[case]
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(text + "\n")
    env = {"LOYALTY_TOKENS": f"{SECRET}=payments"} if case == "twice" else {}
    code, output = start(tmp_path, capsys, monkeypatch, "--tokens", str(tokens), env=env)
    assert code == 2, output
    assert (reason or "the same token is configured twice") in output
    assert SECRET not in output and "tiny-s3cr3t" not in output


def test_bad_environment_tokens_stop_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"LOYALTY_TOKENS": f"{SECRET}=admin,{SECRET}"}
    code, output = start(tmp_path, capsys, monkeypatch, env=env)
    assert code == 2, output
    assert "LOYALTY_TOKENS: entry 2: write TOKEN=ROLE" in output
    assert SECRET not in output


def test_unreadable_tls_files_stop_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "missing.pem")
    code, output = start(tmp_path, capsys, monkeypatch, "--tls-cert", missing, "--tls-key", missing)
    assert code == 2, output
    assert f"{missing}: cannot read" in output
    with pytest.raises(SystemExit) as usage:  # argparse's own exit for bad usage
        start(tmp_path, capsys, monkeypatch, "--tls-client-ca", missing)
    assert usage.value.code == 2
    assert "--tls-client-ca (mutual TLS) needs --tls-cert" in capsys.readouterr().err
