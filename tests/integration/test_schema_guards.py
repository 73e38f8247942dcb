"""The schema itself refuses what the service must never write (issue 3: CHECK, UNIQUE).

The server migrates the database with Alembic at start; these statements go
around the service, straight to that schema, and must fail with
IntegrityError, leaving the rows as they were.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from server.store.db import create_database_engine
from server.store.schema import buckets, idempotency_keys, ledger_entries, redemptions
from tests.integration.common import (
    PROGRAM,
    RPC_TIMEOUT,
    Ids,
    apply_request,
    cart,
    grant_request,
)
from tests.integration.invariants import check_invariants
from tests.support.server import Stubs

pytestmark = pytest.mark.timeout(60)

AS_OF = datetime(2031, 5, 11, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine(db_url: str, stubs: Stubs) -> Iterator[Engine]:
    """An engine on the server's database (asking for `stubs` means it is migrated)."""
    engine = create_database_engine(db_url, pool_size=1)
    yield engine
    engine.dispose()


def _redeemed(stubs: Stubs, ids: Ids) -> None:
    stubs.account.GrantPoints(grant_request(ids, points=500, as_of=AS_OF), timeout=RPC_TIMEOUT)
    stubs.redemption.ApplyRedemption(
        apply_request(
            ids, order=1, request="apply", basket=cart(("l", 1, 1_000_000)), points=30, as_of=AS_OF
        ),
        timeout=RPC_TIMEOUT,
    )


def _constraint_failed(error: IntegrityError, *, check: str | None = None) -> str:
    message = str(error.orig)
    if check is not None:
        assert check in message, message
    return message


def test_a_bucket_never_goes_below_zero_nor_above_granted(
    stubs: Stubs, engine: Engine, db_url: str
) -> None:
    ids = Ids("bucket-check")
    _redeemed(stubs, ids)
    with engine.connect() as connection:
        bucket_id, granted, remaining = connection.execute(
            select(buckets.c.bucket_id, buckets.c.granted, buckets.c.remaining).where(
                buckets.c.customer_id == ids.customer
            )
        ).one()
    assert (granted, remaining) == (500, 470)

    with pytest.raises(IntegrityError) as below, engine.begin() as connection:
        connection.execute(
            text("UPDATE buckets SET remaining = -1 WHERE bucket_id = :id"), {"id": bucket_id}
        )
    _constraint_failed(below.value, check="remaining_not_negative")

    with pytest.raises(IntegrityError) as above, engine.begin() as connection:
        connection.execute(
            update(buckets).where(buckets.c.bucket_id == bucket_id).values(remaining=granted + 1)
        )
    _constraint_failed(above.value, check="remaining_within_granted")

    with engine.connect() as connection:
        assert (
            connection.execute(
                select(buckets.c.remaining).where(buckets.c.bucket_id == bucket_id)
            ).scalar_one()
            == 470
        )


def test_one_redemption_per_order_and_one_record_per_request_id(
    stubs: Stubs, engine: Engine
) -> None:
    ids = Ids("unique")
    _redeemed(stubs, ids)
    with engine.connect() as connection:
        first = connection.execute(
            select(redemptions).where(redemptions.c.order_id == ids.order(1))
        ).one()
        key = connection.execute(
            select(idempotency_keys).where(idempotency_keys.c.request_id == ids.request("apply"))
        ).one()

    # A second live attempt of the order (docs/rules.md §6: at most one live redemption per order).
    second = first._asdict() | {"redemption_id": "00000000-0000-4000-8000-000000000002"}
    second["attempt"] = 2
    with pytest.raises(IntegrityError) as twice, engine.begin() as connection:
        connection.execute(insert(redemptions).values(**second))
    message = _constraint_failed(twice.value)
    assert "uq_redemptions_live_order" in message or "UNIQUE constraint failed" in message
    # The same attempt number twice.
    with pytest.raises(IntegrityError) as again_1, engine.begin() as connection:
        connection.execute(
            insert(redemptions).values(**(second | {"attempt": 1, "state": "RELEASED"}))
        )
    message = _constraint_failed(again_1.value)
    assert "uq_redemptions_order_attempt" in message or "UNIQUE constraint failed" in message

    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(idempotency_keys).values(**key._asdict()))

    with engine.connect() as connection:
        rows = connection.execute(
            select(redemptions.c.redemption_id).where(
                redemptions.c.program_id == PROGRAM, redemptions.c.order_id == ids.order(1)
            )
        ).all()
    assert [r.redemption_id for r in rows] == [first.redemption_id]

    # And through the service, the same order under a new request id:
    again = apply_request(
        ids, order=1, request="again", basket=cart(("l", 1, 1_000_000)), points=30, as_of=AS_OF
    )
    with pytest.raises(grpc.RpcError) as raised:
        stubs.redemption.ApplyRedemption(again, timeout=RPC_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_a_ledger_entry_of_zero_points_or_unknown_kind_is_refused(
    stubs: Stubs, engine: Engine
) -> None:
    ids = Ids("ledger-check")
    _redeemed(stubs, ids)
    base = {
        "program_id": PROGRAM,
        "customer_id": ids.customer,
        "source": "loyalty",
        "effective_at": AS_OF,
        "recorded_at": AS_OF,
    }
    for bad in ({"kind": "GRANT", "points": 0}, {"kind": "GIFT", "points": 5}):
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert(ledger_entries).values(**base, **bad))


def test_the_invariant_check_sees_a_ledger_that_does_not_add_up(
    stubs: Stubs, engine: Engine, db_url: str
) -> None:
    """The check run after every test (reconcile) is not vacuous: one point off is caught."""
    ids = Ids("checker")
    _redeemed(stubs, ids)
    bucket = buckets.c.customer_id == ids.customer
    with engine.begin() as connection:
        connection.execute(update(buckets).where(bucket).values(remaining=buckets.c.remaining - 1))
    try:
        with pytest.raises(AssertionError, match="ledger entries effective by"):
            check_invariants(db_url, AS_OF)
    finally:
        with engine.begin() as connection:
            connection.execute(
                update(buckets).where(bucket).values(remaining=buckets.c.remaining + 1)
            )
    check_invariants(db_url, AS_OF)
