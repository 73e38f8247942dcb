"""pricing.reversal: the cumulative floor per line, and the whole-order and per-line returns."""

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pricing.buckets import Bucket, Debit, DebitRecord, plan_clawback, plan_restore
from pricing.errors import ExceedsRemaining, InvalidArgument, Violation
from pricing.reversal import (
    LineReturn,
    ReturnedLine,
    UnitsLine,
    plan_line_returns,
    units_to_return,
)

MSK = ZoneInfo("Europe/Moscow")


class TestCumulativeFloor:
    def test_ten_points_over_three_units_one_at_a_time(self) -> None:
        # floor(10 × 1 / 3) = 3; floor(10 × 2 / 3) = 6 → 3; floor(10 × 3 / 3) = 10 → 4
        back = []
        for returned in range(3):
            line = UnitsLine("a", quantity=3, points=10, returned_units=returned)
            (move,) = plan_line_returns([line], {"a": 1})
            back.append(move.points)
        assert back == [3, 3, 4]

    def test_two_then_one(self) -> None:
        # floor(10 × 2 / 3) = 6; then 10 − 6 = 4
        first = plan_line_returns([UnitsLine("a", 3, 10)], {"a": 2})
        second = plan_line_returns([UnitsLine("a", 3, 10, returned_units=2)], {"a": 1})
        assert first == [LineReturn("a", 2, 6)]
        assert second == [LineReturn("a", 1, 4)]

    def test_one_then_two(self) -> None:
        # 3; then floor(10 × 3 / 3) − 3 = 7
        first = plan_line_returns([UnitsLine("a", 3, 10)], {"a": 1})
        second = plan_line_returns([UnitsLine("a", 3, 10, returned_units=1)], {"a": 2})
        assert [first[0].points, second[0].points] == [3, 7]

    def test_everything_at_once(self) -> None:
        assert plan_line_returns([UnitsLine("a", 3, 10)], {"a": 3}) == [LineReturn("a", 3, 10)]

    def test_fewer_points_than_units(self) -> None:
        # 2 points over 5 units: floor(2 K / 5) for K = 1..5 = 0, 0, 1, 1, 2 → 0, 0, 1, 0, 1
        back = [
            plan_line_returns([UnitsLine("a", 5, 2, returned_units=k)], {"a": 1})[0].points
            for k in range(5)
        ]
        assert back == [0, 0, 1, 0, 1]

    def test_several_lines_only_the_returned_move(self) -> None:
        lines = [
            UnitsLine("a", 3, 10),
            UnitsLine("b", 4, 7, returned_units=1),
            UnitsLine("c", 1, 5),
        ]
        # a: floor(10 × 1 / 3) = 3; b: floor(7 × 3 / 4) − floor(7 × 1 / 4) = 5 − 1 = 4; c untouched
        assert plan_line_returns(lines, {"a": 1, "b": 2}) == [
            LineReturn("a", 1, 3),
            LineReturn("b", 2, 4),
        ]

    def test_a_line_without_points(self) -> None:
        assert plan_line_returns([UnitsLine("x", 2, 0)], {"x": 2}) == [LineReturn("x", 2, 0)]


class TestUnitsToReturn:
    LINES = (
        UnitsLine("a", 3, 10, returned_units=1),
        UnitsLine("b", 2, 4),
        UnitsLine("c", 1, 0, returned_units=1),
    )

    def test_no_lines_means_everything_that_remains(self) -> None:
        # a: 3 − 1 = 2, b: 2, c: 0
        assert units_to_return(self.LINES, []) == {"a": 2, "b": 2, "c": 0}

    def test_whole_order_after_a_partial_return(self) -> None:
        units = units_to_return(self.LINES, [])
        # a: 10 − floor(10 × 1 / 3) = 7; b: all 4; c: nothing left
        assert plan_line_returns(self.LINES, units) == [
            LineReturn("a", 2, 7),
            LineReturn("b", 2, 4),
        ]

    def test_named_lines(self) -> None:
        returned = [ReturnedLine("b", 1), ReturnedLine("a", 2)]
        assert units_to_return(self.LINES, returned) == {"b": 1, "a": 2}

    def test_more_than_remains(self) -> None:
        with pytest.raises(ExceedsRemaining) as caught:
            units_to_return(self.LINES, [ReturnedLine("a", 3)])
        # 3 − 1 = 2 remain
        assert (caught.value.line_id, caught.value.requested, caught.value.remaining) == ("a", 3, 2)
        assert caught.value.metadata() == {"line_id": "a", "requested": "3", "remaining": "2"}

    def test_a_fully_returned_line(self) -> None:
        with pytest.raises(ExceedsRemaining) as caught:
            units_to_return(self.LINES, [ReturnedLine("c", 1)])
        assert caught.value.remaining == 0

    def test_bad_lines_each_named(self) -> None:
        returned = [
            ReturnedLine("zzz", 1),
            ReturnedLine("a", 0),
            ReturnedLine("b", 1),
            ReturnedLine("b", -2),
        ]
        with pytest.raises(InvalidArgument) as caught:
            units_to_return(self.LINES, returned, field="request.lines")
        assert caught.value.violations == [
            Violation("request.lines[0].line_id", "'zzz' is not a line of this order"),
            Violation("request.lines[1].quantity", "must be > 0"),
            Violation("request.lines[3].line_id", "'b' is listed twice"),
            Violation("request.lines[3].quantity", "must be > 0"),
        ]


class TestReversalScenario:
    """An order spent 12 points on one line of 4 units and earned 9 over 3 units of another."""

    def test_points_go_back_latest_expiring_first(self) -> None:
        # spent: 7 from a bucket expiring 03-20, 5 from one expiring 06-01
        records = [
            DebitRecord(
                1, taken=7, returned=0, expires_at=datetime(2026, 3, 20, tzinfo=MSK), seq=1
            ),
            DebitRecord(2, taken=5, returned=0, expires_at=datetime(2026, 6, 1, tzinfo=MSK), seq=2),
        ]
        # 3 of 4 units back: floor(12 × 3 / 4) = 9 points
        (move,) = plan_line_returns([UnitsLine("x", 4, 12)], {"x": 3})
        assert move.points == 9
        # latest-expiring first: bucket 2 gets its 5, bucket 1 the other 4
        assert plan_restore(records, points=move.points) == [Debit(2, 5), Debit(1, 4)]
        # the last unit: 12 − 9 = 3, back to bucket 1 (7 − 4 = 3 outstanding)
        (last,) = plan_line_returns([UnitsLine("x", 4, 12, returned_units=3)], {"x": 1})
        after = [replace(records[0], returned=4), replace(records[1], returned=5)]
        assert plan_restore(after, points=last.points) == [Debit(1, 3)]

    def test_earned_points_clawed_back(self) -> None:
        now = datetime(2026, 3, 15, 12, tzinfo=MSK)
        own = Bucket(10, "loyalty", 2, now, datetime(2026, 6, 13, tzinfo=MSK), seq=10)
        other = Bucket(11, "action", 20, datetime(2025, 1, 1, tzinfo=MSK), None, seq=11)
        # 2 of 3 units back: floor(9 × 2 / 3) = 6 earned points to take back
        (move,) = plan_line_returns([UnitsLine("y", 3, 9)], {"y": 2})
        assert move.points == 6
        # own bucket has 2 left (the rest was spent) → 2, then the action bucket 4
        plan = plan_clawback([own, other], points=move.points, own_bucket_id=10, now=now)
        assert plan.debits == [Debit(10, 2), Debit(11, 4)]
        assert plan.debt == 0
