"""A return written down on PostgreSQL in one statement (docs/rules.md §6).

The units per order line, the redemption's new totals and state, its lines' units and the
points back per debit, the accrual's totals and its lines' units: six tables, each row
updated at most once, so one data-modifying CTE does it in one round trip. A side the
return does not touch gets NULL ids and empty arrays, and updates nothing. SQLite writes the
same through `redemptions.record_return` and `accruals.record_accrual_return`.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from pricing.buckets import Debit
from pricing.order import ReturnPlan
from server.store.hot import Hot

_write = Hot(
    text(
        """
WITH order_units AS (
  UPDATE order_lines SET returned_units = order_lines.returned_units + u.n
  FROM unnest(CAST(:order_line_ids AS VARCHAR[]), CAST(:order_units AS BIGINT[])) AS u(line_id, n)
  WHERE order_lines.program_id = CAST(:program_id AS VARCHAR)
    AND order_lines.order_id = CAST(:order_id AS VARCHAR) AND order_lines.line_id = u.line_id
), attempt AS (
  UPDATE redemptions SET
    points_reversed = redemptions.points_reversed + CAST(:points_returned AS BIGINT),
    state = CAST(:state AS VARCHAR), updated_at = CAST(:now AS TIMESTAMPTZ)
  WHERE redemptions.redemption_id = CAST(:redemption_id AS VARCHAR)
), attempt_units AS (
  UPDATE redemption_lines SET returned_units = redemption_lines.returned_units + u.n
  FROM unnest(CAST(:redemption_line_ids AS VARCHAR[]), CAST(:redemption_units AS BIGINT[]))
    AS u(line_id, n)
  WHERE redemption_lines.redemption_id = CAST(:redemption_id AS VARCHAR)
    AND redemption_lines.line_id = u.line_id
), given_back AS (
  UPDATE redemption_debits SET points_returned = redemption_debits.points_returned + u.n
  FROM unnest(CAST(:bucket_ids AS BIGINT[]), CAST(:restored AS BIGINT[])) AS u(bucket_id, n)
  WHERE redemption_debits.redemption_id = CAST(:redemption_id AS VARCHAR)
    AND redemption_debits.bucket_id = u.bucket_id
), accrual AS (
  UPDATE accruals SET
    base_returned_minor = accruals.base_returned_minor + CAST(:base_returned AS BIGINT),
    points_clawed_back = accruals.points_clawed_back + CAST(:points_taken_back AS BIGINT)
  WHERE accruals.accrual_id = CAST(:accrual_id AS VARCHAR)
)
UPDATE accrual_lines SET returned_units = accrual_lines.returned_units + u.n
FROM unnest(CAST(:accrual_line_ids AS VARCHAR[]), CAST(:accrual_units AS BIGINT[]))
  AS u(line_id, n)
WHERE accrual_lines.accrual_id = CAST(:accrual_id AS VARCHAR)
  AND accrual_lines.line_id = u.line_id
"""
    )
)


def _units(units: Mapping[str, int]) -> tuple[list[str], list[int]]:
    """Line ids and units of the lines that moved (a line with no unit back is left alone)."""
    moved = [(line_id, count) for line_id, count in units.items() if count]
    return [line_id for line_id, _ in moved], [count for _, count in moved]


def write_return(
    connection: Connection,
    *,
    program_id: str,
    order_id: str,
    plan: ReturnPlan,
    restored: Sequence[Debit],
    now: datetime,
) -> None:
    """The return `plan` on the order, points back per debit `restored`: one statement."""
    order_line_ids, order_units = _units(plan.order_units)
    params: dict[str, Any] = {
        "program_id": program_id,
        "order_id": order_id,
        "order_line_ids": order_line_ids,
        "order_units": order_units,
        "now": now,
        "redemption_id": None,
        "points_returned": 0,
        "state": None,
        "redemption_line_ids": [],
        "redemption_units": [],
        "bucket_ids": [d.bucket_id for d in restored],
        "restored": [d.points for d in restored],
        "accrual_id": None,
        "base_returned": 0,
        "points_taken_back": 0,
        "accrual_line_ids": [],
        "accrual_units": [],
    }
    back = plan.redemption
    if back is not None:
        line_ids, units = _units(back.units)
        params.update(
            redemption_id=back.redemption.redemption_id, points_returned=back.points,
            state=back.state.value, redemption_line_ids=line_ids, redemption_units=units,
        )  # fmt: skip
    taken = plan.accrual
    if taken is not None:
        line_ids, units = _units(taken.units)
        params.update(
            accrual_id=taken.accrual.accrual_id, base_returned=taken.base_minor,
            points_taken_back=taken.points, accrual_line_ids=line_ids, accrual_units=units,
        )  # fmt: skip
    _write.run(connection, params)
