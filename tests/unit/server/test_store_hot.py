"""Hot statements (server/store/hot.py): constants are literals, never parameters."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, select

from server.store.hot import ConstantAsParameter, Hot, const, utc
from server.store.schema import redemptions

_r = redemptions.c


def test_a_constant_sent_as_a_parameter_is_refused() -> None:
    statement = select(_r.redemption_id).where(
        _r.customer_id == bindparam("customer_id"), _r.state == "HELD"
    )
    with pytest.raises(ConstantAsParameter, match="state_1"):
        Hot(statement)


def test_a_constant_written_as_a_literal_is_in_the_text() -> None:
    hot = Hot(
        select(_r.redemption_id)
        .where(_r.customer_id == bindparam("customer_id"), _r.state == const("HELD"))
        .limit(const(1))
    )
    assert "redemptions.state = 'HELD'" in hot.sql
    assert "LIMIT 1" in hot.sql
    assert "%(customer_id)s" in hot.sql


def test_const_quotes_text_and_writes_numbers_and_truth_as_they_are() -> None:
    assert str(const("it's")) == "'it''s'"
    assert str(const(0)) == "0"
    assert str(const(True)) == "true"


def test_instants_read_in_another_zone_come_back_in_utc() -> None:
    moscow = timezone(timedelta(hours=3))
    assert utc(datetime(2026, 3, 1, 15, 0, tzinfo=moscow)) == datetime(
        2026, 3, 1, 12, 0, tzinfo=UTC
    )
    assert utc(datetime(2026, 3, 1, 15, 0, tzinfo=moscow)).tzinfo is UTC  # type: ignore[union-attr]
    assert utc(None) is None
