"""check-config prints money in each currency's own minor digits (ISO 4217), not assuming two."""

from pathlib import Path

import pytest

from server.check_config import check_config

PROGRAMS = Path(__file__).resolve().parents[3] / "programs"


@pytest.mark.parametrize(
    ("currency", "point", "threshold"),
    [
        # 100 minor units a point, 10,000,000 minor units for the regular tier:
        ("RUB", "1.00 RUB", "100,000.00 RUB"),  # 2 digits: 100 kopecks; 10,000,000 / 100
        ("JPY", "100 JPY", "10,000,000 JPY"),  # 0 digits: the yen has no minor unit
        ("KWD", "0.100 KWD", "10,000.000 KWD"),  # 3 digits: 1,000 fils; 10,000,000 / 1,000
    ],
)
def test_money_in_the_currencys_minor_digits(
    tmp_path: Path, currency: str, point: str, threshold: str
) -> None:
    text = (PROGRAMS / "stomatorg.toml").read_text()
    (tmp_path / "p.toml").write_text(text.replace('currency = "RUB"', f'currency = "{currency}"'))
    code, report = check_config(tmp_path)
    assert code == 0, report
    assert f"1 point = {point};" in report
    assert f"(from 3 orders and {threshold})" in report
