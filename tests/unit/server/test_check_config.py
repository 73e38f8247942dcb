"""`loyalty-server check-config`: what a person editing a program file sees."""

import shutil
import subprocess
import sys
from pathlib import Path

from server.check_config import check_config

ROOT = Path(__file__).resolve().parents[3]
PROGRAMS = ROOT / "programs"


def test_the_shipped_programs_are_described() -> None:
    code, report = check_config(PROGRAMS)
    assert code == 0
    assert "2 program(s) OK" in report
    # stomatorg's regular tier: 5 % both ways from 3 orders and 100,000 RUB
    assert (
        "regular: earns 5 %, points pay up to 5 % of eligible goods "
        "(from 3 orders and 100,000.00 RUB)" in report
    )
    # DENCO 1.5.2: the card lifts loyalty points to 99.99 %, others stay at 50 %
    assert "paying with denco_card: total up to 99.99 %; loyalty 99.99 %, other sources 50 %" in (
        report
    )
    assert "action: never expire" in report
    assert "excluded from points by rule 'no_points': tags no_points" in report


def test_a_broken_program_names_its_file_and_key(tmp_path: Path) -> None:
    shutil.copy(PROGRAMS / "denco.toml", tmp_path / "denco.toml")
    text = (
        (PROGRAMS / "stomatorg.toml")
        .read_text()
        .replace("redeem_cap_bp = 1500", "redeem_cap_bp = 15000")
    )
    (tmp_path / "stomatorg.toml").write_text(text)
    code, report = check_config(tmp_path)
    assert code == 1
    assert report == (
        f"invalid: {tmp_path / 'stomatorg.toml'}: tiers[3].redeem_cap_bp: "
        "must be basis points 0..10000, got 15000"
    )


def test_the_command_exits_non_zero_on_a_broken_program(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text('id = "x"\n')
    done = subprocess.run(
        [sys.executable, "-m", "server.main", "check-config", "--programs", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"invalid: {tmp_path / 'x.toml'}: currency: is required" in done.stdout
