"""Accruals: what an order earned, split over its lines, and what returns took back."""

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from pricing.accrual import Accrual
from pricing.tiers import QualifyingOrder
from server.store.errors import DuplicateAccrual, duplicates_as
from server.store.schema import accrual_lines, accruals


def add_accrual(connection: Connection, accrual: Accrual) -> None:
    """Raises `DuplicateAccrual` when the order got an accrual meanwhile."""
    with duplicates_as(DuplicateAccrual):
        _insert(connection, accrual)
    connection.execute(
        insert(accrual_lines),
        [
            {
                "accrual_id": accrual.accrual_id,
                "line_id": line.line_id,
                "position": position,
                "quantity": line.quantity,
                "base_minor": line.base_minor,
                "points": line.points,
            }
            for position, line in enumerate(accrual.lines)
        ],
    )


def _insert(connection: Connection, accrual: Accrual) -> None:
    connection.execute(
        insert(accruals).values(
            accrual_id=accrual.accrual_id,
            program_id=accrual.program_id,
            order_id=accrual.order_id,
            customer_id=accrual.customer_id,
            points=accrual.points,
            base_minor=accrual.base_minor,
            bucket_id=accrual.bucket_id,
            tier_id=accrual.tier_id,
            earn_rate_bp=accrual.earn_rate_bp,
            program_version=accrual.program_version,
            delivered_at=accrual.delivered_at,
            available_at=accrual.available_at,
            expires_at=accrual.expires_at,
            created_at=accrual.created_at,
        )
    )


def record_accrual_return(
    connection: Connection,
    accrual: Accrual,
    *,
    units: Mapping[str, int],
    base_returned_minor: int,
    points_taken_back: int,
) -> None:
    """Units returned per line, the base they took off the tier amount, the points taken back."""
    connection.execute(
        update(accruals)
        .where(accruals.c.accrual_id == accrual.accrual_id)
        .values(
            base_returned_minor=accruals.c.base_returned_minor + base_returned_minor,
            points_clawed_back=accruals.c.points_clawed_back + points_taken_back,
        )
    )
    params = [
        {"a_id": accrual.accrual_id, "l_id": line_id, "units": count}
        for line_id, count in units.items()
        if count
    ]
    if params:
        connection.execute(
            update(accrual_lines)
            .where(
                accrual_lines.c.accrual_id == bindparam("a_id"),
                accrual_lines.c.line_id == bindparam("l_id"),
            )
            .values(returned_units=accrual_lines.c.returned_units + bindparam("units")),
            params,
        )


_a = accruals.c
_qualifying = select(_a.available_at, _a.base_minor - _a.base_returned_minor).where(
    _a.program_id == bindparam("program_id"),
    _a.customer_id == bindparam("customer_id"),
    _a.available_at >= bindparam("since"),
    _a.available_at <= bindparam("until"),
)


def qualifying_orders(
    connection: Connection, *, program_id: str, customer_id: str, since: datetime, until: datetime
) -> list[QualifyingOrder]:
    """Accruals that matured in [since, until], with the amount they still count for."""
    rows = connection.execute(
        _qualifying,
        {"program_id": program_id, "customer_id": customer_id, "since": since, "until": until},
    )
    return [QualifyingOrder(matured_at, amount) for matured_at, amount in rows]
