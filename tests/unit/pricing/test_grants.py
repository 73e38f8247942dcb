"""GrantPoints' window and credit (docs/rules.md §5)."""

from datetime import UTC, datetime, timedelta

import pytest

from pricing.errors import InvalidArgument
from pricing.grants import GrantCredit, GrantWindow, grant_credit, grant_window

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def field_of(**window: object) -> str:
    with pytest.raises(InvalidArgument) as caught:
        grant_window(**{"available_at": None, "expires_at": None, "expiry_days": None,
                        "now": NOW, **window})  # type: ignore[arg-type]  # fmt: skip
    (violation,) = caught.value.violations
    return violation.field


def test_without_dates_spendable_now_for_the_sources_days() -> None:
    window = grant_window(available_at=None, expires_at=None, expiry_days=90, now=NOW)
    assert window == GrantWindow(NOW, NOW + 90 * DAY)


def test_a_source_without_expiry_never_expires() -> None:
    window = grant_window(available_at=NOW - 400 * DAY, expires_at=None, expiry_days=None, now=NOW)
    assert window == GrantWindow(NOW - 400 * DAY, None)


def test_a_given_expiry_at_or_before_the_call_is_refused_on_expires_at() -> None:
    # issue 13: such points were counted in balance_after though never spendable
    assert field_of(expires_at=NOW) == "expires_at"
    assert field_of(expires_at=NOW - DAY) == "expires_at"
    assert field_of(available_at=NOW - 10 * DAY, expires_at=NOW) == "expires_at"
    window = grant_window(available_at=None, expires_at=NOW + timedelta(microseconds=1),
                          expiry_days=90, now=NOW)  # fmt: skip
    assert window.expires_at == NOW + timedelta(microseconds=1)


def test_a_derived_expiry_at_or_before_the_call_is_refused_on_available_at() -> None:
    # available 90 days ago + 90 days = now: already over
    assert field_of(available_at=NOW - 90 * DAY, expiry_days=90) == "available_at"
    # 89 days ago + 90 days = tomorrow: fine
    window = grant_window(available_at=NOW - 89 * DAY, expires_at=None, expiry_days=90, now=NOW)
    assert window.expires_at == NOW + DAY


def test_expiry_not_after_availability_is_refused_on_expires_at() -> None:
    assert field_of(available_at=NOW + DAY, expires_at=NOW + DAY) == "expires_at"


def test_a_grant_spendable_now_pays_debt_at_the_call() -> None:
    window = GrantWindow(NOW, None)
    # 100 points, debt 30: 30 pay it, 70 stay and are spendable
    assert grant_credit(points=100, debt=30, window=window, now=NOW) == GrantCredit(
        to_debt=30, remaining=70, settled=True, spendable_now=70
    )


def test_a_grant_maturing_later_pays_debt_when_it_matures() -> None:
    window = GrantWindow(NOW + DAY, None)
    # nothing paid now, nothing spendable now: the bucket keeps all 100 until it matures
    assert grant_credit(points=100, debt=30, window=window, now=NOW) == GrantCredit(
        to_debt=0, remaining=100, settled=False, spendable_now=0
    )
