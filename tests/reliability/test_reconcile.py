"""`loyalty-server reconcile`: a clean database agrees; a corrupted row is named (issue 8).

The accounts below go through what changes points: grants (one spendable
only tomorrow), a spend and a partial return, holds captured, released and
left to lapse, an accrual spent and then returned into debt, a grant paying
debt, an accrual still pending (later matured but not yet settled), and a
grant that expired. Reconcile agrees at several instants — before the expiry
job has written anything, after it has, and long after, when lapses and
settlements are due but unwritten — then each corruption made by hand is
caught, with the account, what disagrees, and expected against found; exit 1.

The schema refuses a negative bucket by itself (and remaining above granted):
tests/integration/test_schema_guards.py.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, insert, select, update

from loyalty.client import LoyaltyClient
from server.reconcile import Mismatch, reconcile
from server.store.db import create_database_engine
from server.store.schema import (
    accounts,
    accruals,
    buckets,
    idempotency_keys,
    ledger_entries,
    redemptions,
)
from tests.integration.common import PROGRAM, Ids, cart
from tests.reliability.load import client_config, run_expiry, run_reconcile
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2033, 1, 10, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=2)  # after every write below
MUCH_LATER = T0 + timedelta(days=30)  # the pending accrual has matured, unsettled


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_database_engine(db_url, pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def accounts_made(server: ServerProcess) -> dict[str, str]:
    """The scenario; returns its customers and the ids the corruptions aim at."""
    ids = Ids("reconcile")
    a, b, c = (f"{ids.customer}-{name}" for name in "abc")
    four = cart(("l", 4, 2_500_000))  # 10,000 RUB in 4 units: at most 300 points
    big = cart(("l", 1, 100_000_000))  # 1,000,000 RUB: at most 30,000 points
    with LoyaltyClient(config=client_config(server.address)) as client:

        def grant(customer: str, points: int, n: str, at: datetime, **more: datetime) -> None:
            client.grant_points(
                program_id=PROGRAM, customer_id=customer, points=points, source="loyalty",
                request_id=f"{customer}-{n}", as_of=at, **more,  # type: ignore[arg-type]
            )  # fmt: skip

        def apply(customer: str, order: str, points: int, at: datetime, hold: int = 0) -> None:
            client.apply_redemption(
                program_id=PROGRAM, customer_id=customer, order_id=f"{customer}-{order}",
                cart=big if customer == b else four, points=points, hold_seconds=hold,
                request_id=f"{customer}-{order}-apply", as_of=at,
            )  # fmt: skip

        grant(a, 1_000, "g1", T0)
        grant(a, 500, "g2", T0, available_at=T0 + timedelta(days=1))
        apply(a, "a1", 300, T0)
        client.reverse_redemption(
            program_id=PROGRAM, order_id=f"{a}-a1", lines={"l": 1}, request_id=f"{a}-a1-r",
            as_of=T0,
        )  # fmt: skip
        apply(a, "a2", 200, T0, hold=3600)
        client.capture_redemption(
            program_id=PROGRAM, order_id=f"{a}-a2", request_id=f"{a}-a2-c",
            as_of=T0 + timedelta(minutes=10),
        )  # fmt: skip
        apply(a, "a4", 50, T0 + timedelta(minutes=15), hold=3600)
        client.reverse_redemption(
            program_id=PROGRAM, order_id=f"{a}-a4", request_id=f"{a}-a4-r",
            as_of=T0 + timedelta(minutes=16),
        )  # fmt: skip
        apply(a, "a3", 100, T0 + timedelta(minutes=20), hold=60)  # lapses, unwritten

        client.accrue_order(
            program_id=PROGRAM, customer_id=b, order_id=f"{b}-b1", cart=big,
            delivered_at=T0 - timedelta(days=10), request_id=f"{b}-b1-accrue", as_of=T0,
        )  # fmt: skip
        apply(b, "b2", 20_000, T0)
        client.reverse_redemption(
            program_id=PROGRAM, order_id=f"{b}-b1", request_id=f"{b}-b1-r",
            as_of=T0 + timedelta(minutes=1),
        )  # fmt: skip
        grant(b, 500, "g1", T0 + timedelta(minutes=2))
        client.accrue_order(
            program_id=PROGRAM, customer_id=b, order_id=f"{b}-b3", cart=big, delivered_at=T0,
            request_id=f"{b}-b3-accrue", as_of=T0 + timedelta(minutes=3),
        )  # fmt: skip

        grant(c, 100, "g1", T0, expires_at=T0 + timedelta(hours=1))
        debt = client.get_account(program_id=PROGRAM, customer_id=b, as_of=LATER).debt_points
        assert debt > 0, "the scenario must leave a debt"
    return {"a": a, "b": b, "c": c}


def _mismatches(engine: Engine, at: datetime = LATER) -> list[Mismatch]:
    return reconcile(engine, as_of=at).mismatches


def test_a_clean_database_reconciles_whether_or_not_the_jobs_wrote_anything(
    db_url: str, engine: Engine, accounts_made: dict[str, str], measured: Callable[[str], None]
) -> None:
    # Before the expiry job: the grant of c expired and the hold a3 lapsed, unwritten.
    done = run_reconcile(db_url, LATER)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("no mismatch"), done.stdout
    assert _mismatches(engine, MUCH_LATER) == []
    assert "expired 100 points in" in run_expiry(db_url, LATER)
    assert _mismatches(engine, LATER) == []
    assert _mismatches(engine, MUCH_LATER) == []
    measured(f"reconcile, clean: {done.stdout.strip()}")


def _a_bucket(engine: Engine, customer: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(buckets.c.bucket_id)
                .where(buckets.c.customer_id == customer, buckets.c.granted == 1_000)
                .order_by(buckets.c.bucket_id)
            )
            .scalars()
            .first()  # type: ignore[arg-type]
        )


def _ledger_sum(engine: Engine, customer: str, at: datetime = LATER) -> int:
    with engine.connect() as connection:
        rows = connection.execute(
            select(ledger_entries.c.points).where(
                ledger_entries.c.customer_id == customer, ledger_entries.c.effective_at <= at
            )
        )
        return sum(points for (points,) in rows)


def _named(mismatches: list[Mismatch]) -> set[tuple[str, str, str, object, object]]:
    """(customer, subject kind, what, expected, found) of each mismatch."""
    return {
        (m.customer_id, m.subject.split()[0], m.what.split(" (")[0], m.expected, m.found)
        for m in mismatches
    }


def test_corrupted_rows_are_each_named_with_expected_and_found(
    db_url: str, engine: Engine, accounts_made: dict[str, str], measured: Callable[[str], None]
) -> None:
    a, b = accounts_made["a"], accounts_made["b"]
    run_expiry(db_url, LATER)
    assert _mismatches(engine) == []
    ledger_a = _ledger_sum(engine, a)
    caught = 0

    # 1. A bucket gains 7 points from nowhere: the account's ledger and the bucket disagree.
    bucket = _a_bucket(engine, a)
    with engine.begin() as connection:
        connection.execute(
            update(buckets)
            .where(buckets.c.bucket_id == bucket)
            .values(remaining=buckets.c.remaining + 7)
        )
    done = run_reconcile(db_url, LATER)
    assert done.returncode == 1, done.stdout + done.stderr
    print(done.stdout)  # what an operator sees (shown with -s)
    lines = [line for line in done.stdout.splitlines() if line.startswith("MISMATCH")]
    assert len(lines) == 2, done.stdout
    assert lines[0].startswith(f"MISMATCH {PROGRAM}/{a} account: ledger entries effective by")
    assert lines[0].endswith(f"expected {ledger_a + 7}, found {ledger_a}")
    assert lines[1].startswith(f"MISMATCH {PROGRAM}/{a} bucket {bucket}: remaining")
    assert "exceed what was granted: expected <= 1000, found 1007" in lines[1]
    assert done.stdout.strip().endswith("2 mismatches")
    with engine.begin() as connection:
        connection.execute(
            update(buckets)
            .where(buckets.c.bucket_id == bucket)
            .values(remaining=buckets.c.remaining - 7)
        )
    caught += 1

    # 2. A REDEMPTION entry goes missing.
    e = ledger_entries.c
    with engine.begin() as connection:
        row = connection.execute(
            select(ledger_entries).where(e.order_id == f"{a}-a1", e.kind == "REDEMPTION")
        ).one()
        connection.execute(delete(ledger_entries).where(e.entry_id == row.entry_id))
    assert _named(_mismatches(engine)) == {
        (
            a,
            "account",
            "ledger entries effective by " + LATER.isoformat() + " vs buckets available by then",
            ledger_a,
            ledger_a + 300,
        ),
        # an order's entries are checked over all its redemption attempts
        (a, "order", "REDEMPTION + HOLD entries", -300, 0),
    }
    with engine.begin() as connection:
        connection.execute(insert(ledger_entries).values(**row._asdict()))
    caught += 1

    # 3. A redemption says more came back than did.
    r = redemptions.c
    with engine.begin() as connection:
        connection.execute(
            update(redemptions)
            .where(r.order_id == f"{a}-a1")
            .values(points_reversed=r.points_reversed + 1)
        )
    assert _named(_mismatches(engine)) == {
        (a, "order", "REVERSAL entries", 76, 75),
        (a, "redemption", "points given back to buckets", 76, 75),
        (
            a,
            "redemption",
            "points_reversed vs sum of floor(line points * returned / quantity)",
            75,
            76,
        ),
    }
    with engine.begin() as connection:
        connection.execute(
            update(redemptions)
            .where(r.order_id == f"{a}-a1")
            .values(points_reversed=r.points_reversed - 1)
        )
    caught += 1

    # 4. A debt changes by hand.
    ledger_b = _ledger_sum(engine, b)
    with engine.begin() as connection:
        connection.execute(
            update(accounts)
            .where(accounts.c.customer_id == b)
            .values(debt_points=accounts.c.debt_points + 5)
        )
    assert _named(_mismatches(engine)) == {
        (
            b,
            "account",
            "ledger entries effective by " + LATER.isoformat() + " vs buckets available by then",
            ledger_b - 5,
            ledger_b,
        ),
    }
    with engine.begin() as connection:
        connection.execute(
            update(accounts)
            .where(accounts.c.customer_id == b)
            .values(debt_points=accounts.c.debt_points - 5)
        )
    caught += 1

    # 5. An accrual forgets what a return took back.
    with engine.begin() as connection:
        connection.execute(
            update(accruals)
            .where(accruals.c.order_id == f"{b}-b1")
            .values(points_clawed_back=accruals.c.points_clawed_back - 10)
        )
    with engine.connect() as connection:
        took = connection.execute(
            select(accruals.c.points_clawed_back).where(accruals.c.order_id == f"{b}-b1")
        ).scalar_one()
    assert _named(_mismatches(engine)) == {
        (b, "accrual", "points_clawed_back vs sum of floor(line points * returned / quantity)",
         took + 10, took),
        (b, "accrual", "CLAWBACK + DEBT entries take back", f"0..{took}", took + 10),
    }  # fmt: skip
    with engine.begin() as connection:
        connection.execute(
            update(accruals)
            .where(accruals.c.order_id == f"{b}-b1")
            .values(points_clawed_back=accruals.c.points_clawed_back + 10)
        )
    caught += 1

    # 6. A request id claimed without its answer: a half-done call.
    k = idempotency_keys.c
    with engine.begin() as connection:
        answer = connection.execute(
            select(k.response).where(k.request_id == f"{a}-g1")
        ).scalar_one()
        connection.execute(
            update(idempotency_keys).where(k.request_id == f"{a}-g1").values(response=None)
        )
    (half,) = _mismatches(engine)
    assert str(half) == (
        f"{PROGRAM}/- request {a}-g1 (GrantPoints): claimed without a stored answer: "
        "expected an answer, found none"
    )
    with engine.begin() as connection:
        connection.execute(
            update(idempotency_keys).where(k.request_id == f"{a}-g1").values(response=answer)
        )
    caught += 1

    # 7. An order's accrual under another customer (what AccrueOrder accepted before an
    # order was one thing, docs/rules.md §6): the order is b's, its accrual says a.
    with engine.begin() as connection:
        connection.execute(
            update(accruals).where(accruals.c.order_id == f"{b}-b1").values(customer_id=a)
        )
    assert _named(_mismatches(engine)) == {(a, "order", "customer of its accrual", b, a)}
    with engine.begin() as connection:
        connection.execute(
            update(accruals).where(accruals.c.order_id == f"{b}-b1").values(customer_id=b)
        )
    caught += 1

    done = run_reconcile(db_url, LATER)
    assert done.returncode == 0, done.stdout
    measured(f"reconcile, corrupted by hand: {caught} of {caught} corruptions caught")
