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


def test_the_texts_are_printed() -> None:
    code, report = check_config(PROGRAMS)
    assert code == 0
    assert "    tier regular: ru 'Постоянный клиент'; en 'Regular customer'" in report
    assert "  languages ru, en (default ru)" in report
    assert (
        "    text en binding.TIER_CAP: \"DENCO's rules let points pay at most {percent} of "
        '{base}: {points}"' in report
    )


def _stomatorg_with(tmp_path: Path, texts: str) -> Path:
    text = (PROGRAMS / "stomatorg.toml").read_text() + "\n" + texts
    (tmp_path / "stomatorg.toml").write_text(text)
    return tmp_path / "stomatorg.toml"


def test_an_override_naming_no_message_is_refused(tmp_path: Path) -> None:
    path = _stomatorg_with(tmp_path, '[texts.ru]\n"binding.TIER" = "x"\n')
    assert check_config(tmp_path) == (
        1,
        f"invalid: {path}: texts.ru.\"binding.TIER\": no message 'binding.TIER' "
        "(docs/languages.md lists them)",
    )


def test_an_override_with_a_placeholder_the_message_lacks_is_refused(tmp_path: Path) -> None:
    path = _stomatorg_with(tmp_path, '[texts.en]\n"binding.BALANCE" = "{points} of {cap}"\n')
    assert check_config(tmp_path) == (
        1,
        f'invalid: {path}: texts.en."binding.BALANCE": placeholder {{cap}} is not one this '
        "message has (it has {balance}, {points})",
    )


def test_an_override_with_a_format_spec_or_a_stray_brace_is_refused(tmp_path: Path) -> None:
    _stomatorg_with(tmp_path, '[texts.en]\n"binding.BALANCE" = "{points:>9}"\n')
    code, report = check_config(tmp_path)
    assert (code, report.endswith("placeholder {points} takes no conversion or format spec")) == (
        1,
        True,
    )
    _stomatorg_with(tmp_path, '[texts.en]\n"binding.BALANCE" = "{points"\n')
    code, report = check_config(tmp_path)
    assert code == 1 and "not a valid template" in report


def test_a_noun_form_the_language_does_not_have_is_refused(tmp_path: Path) -> None:
    # English has only the CLDR categories one and other
    path = _stomatorg_with(tmp_path, '[texts.en]\n"points.few" = "{count} pts"\n')
    assert check_config(tmp_path) == (
        1,
        f"invalid: {path}: texts.en.\"points.few\": no message 'points.few' "
        "(docs/languages.md lists them)",
    )


def test_a_language_not_shipped_must_give_every_message(tmp_path: Path) -> None:
    path = _stomatorg_with(tmp_path, '[texts.de]\n"binding.BALANCE" = "{points}"\n')
    code, report = check_config(tmp_path)
    assert code == 1
    assert report.startswith(
        f"invalid: {path}: texts.de: 'de' is not shipped, so every message needs a text; "
        "missing binding.LINE_GRANULARITY, binding.NONE, binding.NO_ELIGIBLE_LINES"
    )
    _stomatorg_with(tmp_path, '[texts.xx]\n"binding.BALANCE" = "{points}"\n')
    assert check_config(tmp_path)[1].endswith("texts.xx: unknown language 'xx'")


def test_a_default_language_the_program_does_not_offer_is_refused(tmp_path: Path) -> None:
    text = (
        (PROGRAMS / "stomatorg.toml")
        .read_text()
        .replace('default_language = "ru"', 'default_language = "de"')
    )
    (tmp_path / "stomatorg.toml").write_text(text)
    assert check_config(tmp_path) == (
        1,
        f"invalid: {tmp_path / 'stomatorg.toml'}: default_language: 'de' is neither shipped "
        "(ru, en) nor given in [texts]",
    )
