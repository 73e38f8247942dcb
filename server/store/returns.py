"""A return written down on PostgreSQL in one statement (docs/rules.md §6).

The units per order line, the redemption's new totals and state, its lines' units and the
points back per debit, the accrual's totals and its lines' units: six tables, each row
updated at most once, so one data-modifying CTE does it in one round trip. A side the
return does not touch gets NULL ids and empty objects, and updates nothing. The units per
line go as one JSON object per table ({line id: units}), matched by `?` within the row's
parent: PostgreSQL then keeps the statement's generic plan (with arrays joined by unnest
it planned every call anew, ≈ 150 µs more of its CPU per return, measured). SQLite writes the
same through `redemptions.record_return` and `accruals.record_accrual_return`.
"""

import json
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
  UPDATE order_lines
  SET returned_units = order_lines.returned_units
    + CAST(CAST(:order_units AS JSONB) ->> order_lines.line_id AS BIGINT)
  WHERE order_lines.program_id = CAST(:program_id AS VARCHAR)
    AND order_lines.order_id = CAST(:order_id AS VARCHAR)
    AND CAST(:order_units AS JSONB) ? order_lines.line_id
), attempt AS (
  UPDATE redemptions SET
    points_reversed = redemptions.points_reversed + CAST(:points_returned AS BIGINT),
    state = CAST(:state AS VARCHAR), updated_at = CAST(:now AS TIMESTAMPTZ)
  WHERE redemptions.redemption_id = CAST(:redemption_id AS VARCHAR)
), attempt_units AS (
  UPDATE redemption_lines
  SET returned_units = redemption_lines.returned_units
    + CAST(CAST(:redemption_units AS JSONB) ->> redemption_lines.line_id AS BIGINT)
  WHERE redemption_lines.redemption_id = CAST(:redemption_id AS VARCHAR)
    AND CAST(:redemption_units AS JSONB) ? redemption_lines.line_id
), given_back AS (
  UPDATE redemption_debits
  SET points_returned = redemption_debits.points_returned
    + CAST(CAST(:restored AS JSONB) ->> CAST(redemption_debits.bucket_id AS TEXT) AS BIGINT)
  WHERE redemption_debits.redemption_id = CAST(:redemption_id AS VARCHAR)
    AND CAST(:restored AS JSONB) ? CAST(redemption_debits.bucket_id AS TEXT)
), accrual AS (
  UPDATE accruals SET
    base_returned_minor = accruals.base_returned_minor + CAST(:base_returned AS BIGINT),
    points_clawed_back = accruals.points_clawed_back + CAST(:points_taken_back AS BIGINT)
  WHERE accruals.accrual_id = CAST(:accrual_id AS VARCHAR)
)
UPDATE accrual_lines
SET returned_units = accrual_lines.returned_units
  + CAST(CAST(:accrual_units AS JSONB) ->> accrual_lines.line_id AS BIGINT)
WHERE accrual_lines.accrual_id = CAST(:accrual_id AS VARCHAR)
  AND CAST(:accrual_units AS JSONB) ? accrual_lines.line_id
"""
    )
)


def _units(units: Mapping[str, int]) -> str:
    """{line id: units} of the lines that moved, as JSON (a line with none back is left alone)."""
    return json.dumps({line_id: count for line_id, count in units.items() if count})


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
    params: dict[str, Any] = {
        "program_id": program_id,
        "order_id": order_id,
        "order_units": _units(plan.order_units),
        "now": now,
        "redemption_id": None,
        "points_returned": 0,
        "state": None,
        "redemption_units": "{}",
        "restored": json.dumps({str(d.bucket_id): d.points for d in restored}),
        "accrual_id": None,
        "base_returned": 0,
        "points_taken_back": 0,
        "accrual_units": "{}",
    }
    back = plan.redemption
    if back is not None:
        params.update(
            redemption_id=back.redemption.redemption_id, points_returned=back.points,
            state=back.state.value, redemption_units=_units(back.units),
        )  # fmt: skip
    taken = plan.accrual
    if taken is not None:
        params.update(
            accrual_id=taken.accrual.accrual_id, base_returned=taken.base_minor,
            points_taken_back=taken.points, accrual_units=_units(taken.units),
        )  # fmt: skip
    _write.run(connection, params)
