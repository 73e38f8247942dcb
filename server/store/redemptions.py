"""Redemptions with their line allocations and bucket debits."""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    any_,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from pricing.buckets import Debit, DebitRecord
from pricing.holds import Hold
from pricing.order import Redemption, RedemptionLine, RedemptionState
from server.store.errors import DuplicateRedemption, duplicates_as
from server.store.hot import Hot, const
from server.store.schema import buckets, redemption_debits, redemption_lines, redemptions

_r = redemptions.c

# Built once: the hot path only binds values (no construct, no cache key built per call).
_insert_redemption = insert(redemptions)  # SQLite
_insert_lines = insert(redemption_lines)
_insert_debits = insert(redemption_debits)
_debits = select(
    redemption_debits.c.redemption_id,
    redemption_debits.c.bucket_id,
    redemption_debits.c.points_taken,
    redemption_debits.c.points_returned,
    buckets.c.expires_at,
).join(buckets, buckets.c.bucket_id == redemption_debits.c.bucket_id)
# PostgreSQL: one statement text for any number of ids (`= ANY (array)`); SQLite: IN (...).
_debits_of = Hot(
    _debits.where(redemption_debits.c.redemption_id == any_(bindparam("ids", type_=ARRAY(String)))),
    sqlite=_debits.where(redemption_debits.c.redemption_id.in_(bindparam("ids", expanding=True))),
)
_holds = Hot(
    select(_r.redemption_id, _r.order_id, _r.points, _r.hold_expires_at).where(
        _r.program_id == bindparam("program_id"),
        _r.customer_id == bindparam("customer_id"),
        _r.state == const("HELD"),
    )
)


def add_redemption(connection: Connection, redemption: Redemption) -> None:
    """Raises `DuplicateRedemption` when the order got a live redemption meanwhile (on
    PostgreSQL an apply writes it with the rest: server/store/placement.py)."""
    with duplicates_as(DuplicateRedemption):
        _insert(connection, redemption)
    _add_lines(connection, redemption.redemption_id, redemption.lines)
    if redemption.debits:
        connection.execute(
            _insert_debits,
            [
                {
                    "redemption_id": redemption.redemption_id,
                    "bucket_id": debit.bucket_id,
                    "points_taken": debit.taken,
                }
                for debit in redemption.debits
            ],
        )


def attempt_row(redemption: Redemption) -> dict[str, Any]:
    """The attempt's row in `redemptions`."""
    return {
        "redemption_id": redemption.redemption_id,
        "program_id": redemption.program_id,
        "order_id": redemption.order_id,
        "customer_id": redemption.customer_id,
        "state": redemption.state.value,
        "attempt": redemption.attempt,
        "points": redemption.points,
        "discount_minor": redemption.discount_minor,
        "points_reversed": redemption.points_reversed,
        "payment_method": redemption.payment_method,
        "program_version": redemption.program_version,
        "hold_expires_at": redemption.hold_expires_at,
        "created_at": redemption.created_at,
        "updated_at": redemption.created_at,
    }


def _insert(connection: Connection, redemption: Redemption) -> None:
    connection.execute(_insert_redemption, attempt_row(redemption))


def _add_lines(
    connection: Connection, redemption_id: str, lines: tuple[RedemptionLine, ...]
) -> None:
    connection.execute(
        _insert_lines,
        [
            {
                "redemption_id": redemption_id,
                "line_id": line.line_id,
                "position": position,
                "quantity": line.quantity,
                "points": line.points,
                "discount_minor": line.discount_minor,
            }
            for position, line in enumerate(lines)
        ],
    )


def record_return(
    connection: Connection,
    redemption: Redemption,
    *,
    units: Mapping[str, int],
    restored: Iterable[Debit],
    points_returned: int,
    state: RedemptionState,
    now: datetime,
) -> None:
    """Write down a return: units per line, points back per debit, the new totals and state."""
    connection.execute(
        update(redemptions)
        .where(redemptions.c.redemption_id == redemption.redemption_id)
        .values(
            points_reversed=redemptions.c.points_reversed + points_returned,
            state=state.value,
            updated_at=now,
        )
    )
    line_params = [
        {"r_id": redemption.redemption_id, "l_id": line_id, "units": count}
        for line_id, count in units.items()
        if count
    ]
    if line_params:
        connection.execute(
            update(redemption_lines)
            .where(
                redemption_lines.c.redemption_id == bindparam("r_id"),
                redemption_lines.c.line_id == bindparam("l_id"),
            )
            .values(returned_units=redemption_lines.c.returned_units + bindparam("units")),
            line_params,
        )
    _debits_given_back(connection, redemption.redemption_id, restored)


def _debit_records(
    connection: Connection, redemption_ids: list[str]
) -> dict[str, list[DebitRecord]]:
    rows = _debits_of.named(connection, {"ids": redemption_ids})
    records: dict[str, list[DebitRecord]] = {}
    for row in rows:
        records.setdefault(row.redemption_id, []).append(
            DebitRecord(
                row.bucket_id, row.points_taken, row.points_returned, row.expires_at, row.bucket_id
            )
        )
    return records


def account_holds(connection: Connection, *, program_id: str, customer_id: str) -> list[Hold]:
    """The account's redemptions still in state HELD (some may have lapsed by now)."""
    rows = _holds.named(connection, {"program_id": program_id, "customer_id": customer_id})
    if not rows:
        return []
    debits = _debit_records(connection, [row.redemption_id for row in rows])
    return [
        Hold(
            row.redemption_id,
            row.order_id,
            row.points,
            row.hold_expires_at,
            tuple(debits.get(row.redemption_id, ())),
        )
        for row in rows
    ]


def record_release(
    connection: Connection,
    *,
    redemption_id: str,
    returned: Iterable[Debit],
    state: RedemptionState,
    now: datetime,
    paid_debt: int = 0,
) -> None:
    """A hold released (RELEASED) or lapsed (EXPIRED): its debits are all given back.

    A lapse keeps what it paid of the debt (`paid_debt`), for reads before its deadline.
    """
    set_state(connection, redemption_id=redemption_id, state=state, now=now)
    if paid_debt and state is RedemptionState.EXPIRED:
        connection.execute(
            update(redemptions)
            .where(redemptions.c.redemption_id == redemption_id)
            .values(lapse_paid_debt_points=paid_debt)
        )
    _debits_given_back(connection, redemption_id, returned)


_lapsed_after = select(
    _r.redemption_id, _r.order_id, _r.points, _r.hold_expires_at, _r.lapse_paid_debt_points
).where(
    _r.program_id == bindparam("program_id"),
    _r.customer_id == bindparam("customer_id"),
    _r.state == const("EXPIRED"),
    _r.hold_expires_at > bindparam("now"),
    # A hold placed after `now` did not exist then: nothing of it to undo.
    _r.created_at <= bindparam("now"),
)


def lapsed_after(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> list[Hold]:
    """Holds whose lapse is written down though their deadline is after `now`."""
    rows = connection.execute(
        _lapsed_after, {"program_id": program_id, "customer_id": customer_id, "now": now}
    ).all()
    debits = _debit_records(connection, [row.redemption_id for row in rows]) if rows else {}
    return [
        Hold(
            row.redemption_id,
            row.order_id,
            row.points,
            row.hold_expires_at,
            tuple(debits.get(row.redemption_id, ())),
            paid_debt=row.lapse_paid_debt_points,
        )
        for row in rows
    ]


_give_back_to_debit = (
    update(redemption_debits)
    .where(
        redemption_debits.c.redemption_id == bindparam("r_id"),
        redemption_debits.c.bucket_id == bindparam("b_id"),
    )
    .values(points_returned=redemption_debits.c.points_returned + bindparam("points"))
)


def _debits_given_back(connection: Connection, redemption_id: str, back: Iterable[Debit]) -> None:
    """Points that went back to the buckets a redemption took them from."""
    params = [{"r_id": redemption_id, "b_id": d.bucket_id, "points": d.points} for d in back]
    if params:
        connection.execute(_give_back_to_debit, params)


_set_state = Hot(
    update(redemptions)
    .where(_r.redemption_id == bindparam("r_id"))
    .values(state=bindparam("state"), updated_at=bindparam("now"))
)


def set_state(
    connection: Connection, *, redemption_id: str, state: RedemptionState, now: datetime
) -> None:
    """A capture's, a release's or a lapse's new state (prepared: CaptureRedemption's write)."""
    _set_state.run(connection, {"r_id": redemption_id, "state": state.value, "now": now})


def accounts_with_lapsed_holds(
    connection: Connection, *, now: datetime, limit: int
) -> list[tuple[str, str]]:
    r = redemptions.c
    rows = connection.execute(
        select(r.program_id, r.customer_id)
        .where(r.state == "HELD", r.hold_expires_at <= now)
        .group_by(r.program_id, r.customer_id)
        .limit(limit)
    )
    return [(row.program_id, row.customer_id) for row in rows]
