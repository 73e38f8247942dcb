"""The expiry job racing itself and racing applies, on PostgreSQL (docs/rules.md §7, issue 4).

The job writes one EXPIRY entry per bucket whose window closed, under the
account's lock. These tests run it twice at once — on two threads, and as two
`server.main expire` processes — and alongside a stream of applies, then
check on the database that nothing was lost or written twice (to be sure the
runs overlap, the process test holds every account row locked until both
processes are waiting for it):

* exactly one EXPIRY entry per expired bucket, of exactly the points worked
  out by hand below, effective at the bucket's `expires_at`;
* for every bucket: granted = remaining + spent (its redemption debits) +
  expired; no bucket below zero; no point spent at or after its expiry;
* the ledger reconciles (tests/integration/invariants.py).

Use cases run in-process on one engine; program `stomatorg`; every cart is
one line of 100,000 ₽ (base-tier cap 3,000 points, far above any balance
here), so every apply below is within the maximum.
"""

import itertools
import pickle
import re
import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pricing.cart import Cart, CartLine
from pricing.program import load_programs
from server.service import commands
from server.service.apply import apply_redemption
from server.service.deps import Deps
from server.service.expire import ExpiryReport, expire_points
from server.service.grant import grant_points
from server.store.db import Database, create_database_engine
from server.store.migrate import migrate
from server.store.schema import buckets, ledger_entries, redemption_debits, redemptions
from tests.integration.common import accounts_locked
from tests.integration.invariants import check_invariants
from tests.support.databases import fresh_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = "stomatorg"
T0 = datetime(2031, 6, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
BIG_CART = Cart(
    currency="RUB",
    lines=(CartLine(line_id="l1", quantity=1, unit_price_minor=10_000_000, sku="s"),),
)


@dataclass(frozen=True)
class Env:
    url: str
    db: Database
    deps: Deps


@pytest.fixture
def env() -> Iterator[Env]:
    with fresh_postgres() as url:
        engine = create_database_engine(url, pool_size=16)
        migrate(engine)
        db = Database(engine)
        yield Env(url, db, Deps(db, load_programs(ROOT / "programs")))
        engine.dispose()


def _key() -> commands.Idempotency:
    request_id = f"req-{uuid.uuid4().hex}"
    return commands.Idempotency(request_id, request_id.encode())


def grant(env: Env, customer: str, points: int, source: str, expires_at: datetime | None) -> None:
    command = commands.GrantPoints(
        key=_key(),
        program_id=PROGRAM,
        customer_id=customer,
        points=points,
        source=source,
        available_at=None,
        expires_at=expires_at,
        reason="race test",
    )
    grant_points(env.deps, command, now=T0, render=pickle.dumps)


def apply(env: Env, customer: str, order: str, points: int, now: datetime) -> Any:
    command = commands.ApplyRedemption(
        key=_key(),
        program_id=PROGRAM,
        customer_id=customer,
        order_id=order,
        cart=BIG_CART,
        payment_method="",
        points=points,
        hold_seconds=0,
    )
    return pickle.loads(apply_redemption(env.deps, command, now=now, render=pickle.dumps))


def together(calls: list[Callable[[], Any]], *, timeout: float = 60) -> list[Any]:
    """Run each call on its own thread, all released at once; re-raise the first error."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[i] = calls[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a call is still running"
    if errors:
        raise errors[0]
    return results


def in_parallel(work: Callable[..., None], arguments: list[tuple[Any, ...]]) -> None:
    """Set-up, quicker: `work(*a)` for each `a`, on a few threads (each account on one)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(work, *a) for a in arguments]:
            future.result(timeout=60)


def gated(url: str, calls: list[Callable[[], Any]], *, timeout: float = 60) -> list[Any]:
    """Start every call, let each read what is due and block on the first account's lock,
    then release them together: the calls overlap, account by account."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with accounts_locked(url) as wait_for:
        for t in threads:
            t.start()
        wait_for(len(calls))
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a call is still running"
    if errors:
        raise errors[0]
    return results


@dataclass(frozen=True)
class BucketRow:
    bucket_id: int
    customer_id: str
    source: str
    granted: int
    remaining: int
    expires_at: datetime | None
    expired_points: int


def bucket_rows(env: Env) -> list[BucketRow]:
    b = buckets.c
    rows = env.db.read(
        lambda c: c.execute(
            select(
                b.bucket_id,
                b.customer_id,
                b.source,
                b.granted,
                b.remaining,
                b.expires_at,
                b.expired_points,
            ).order_by(b.bucket_id)
        ).all()
    )
    return [BucketRow(*row) for row in rows]


def expiry_entries(env: Env) -> dict[int, list[tuple[int, datetime]]]:
    """bucket id → its EXPIRY entries (points, effective_at)."""
    e = ledger_entries.c
    rows = env.db.read(
        lambda c: c.execute(
            select(e.bucket_id, e.points, e.effective_at).where(e.kind == "EXPIRY")
        ).all()
    )
    found: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for bucket_id, points, effective_at in rows:
        found[bucket_id].append((points, effective_at))
    return found


def spent_by_bucket(env: Env) -> tuple[dict[int, int], list[tuple[int, datetime]]]:
    """bucket id → points redemptions took from it; and every (bucket, spent-at) pair."""
    d, r = redemption_debits.c, redemptions.c
    rows = env.db.read(
        lambda c: c.execute(
            select(d.bucket_id, d.points_taken, d.points_returned, r.created_at).join(
                redemptions, r.redemption_id == d.redemption_id
            )
        ).all()
    )
    spent: dict[int, int] = defaultdict(int)
    for bucket_id, taken, returned, _ in rows:
        spent[bucket_id] += taken - returned
    return spent, [(bucket_id, at) for bucket_id, _, _, at in rows]


def assert_conserved(env: Env) -> list[BucketRow]:
    """granted = remaining + spent + expired for every bucket; nothing spent once expired."""
    rows = bucket_rows(env)
    spent, spent_at = spent_by_bucket(env)
    entries = expiry_entries(env)
    by_id = {row.bucket_id: row for row in rows}
    for row in rows:
        assert row.remaining >= 0 and row.expired_points >= 0, row
        assert row.granted == row.remaining + spent[row.bucket_id] + row.expired_points, (
            row,
            spent[row.bucket_id],
        )
        written = entries.get(row.bucket_id, [])
        assert len(written) <= 1, f"bucket {row.bucket_id} expired twice: {written}"
        assert sum(-points for points, _ in written) == row.expired_points, (row, written)
        assert all(at == row.expires_at for _, at in written), (row, written)
    for bucket_id, at in spent_at:
        expires_at = by_id[bucket_id].expires_at
        assert expires_at is None or at < expires_at, f"bucket {bucket_id} spent at {at}"
    return rows


# ---- the job twice at once -------------------------------------------------------------

CUSTOMERS = 30
T_FIRST = T0 + 30 * DAY  # A and B have expired, D has not
T_SECOND = T0 + 50 * DAY  # D too


def seed_accounts(env: Env, count: int) -> list[str]:
    """Customer i: A = 100 + i loyalty (T0 + 10 d), B = 50 promo (T0 + 20 d), C = 30 action
    (never), D = 70 promo (T0 + 40 d); then an order of 40 points at T0, which takes A's
    first 40 (first-expiring-first). Expired at T_FIRST: A's 60 + i and B's 50; at
    T_SECOND: D's 70 more. C never expires."""
    tag = uuid.uuid4().hex[:8]
    customers = [f"cust-{tag}-{i:02d}" for i in range(count)]

    def seed(i: int, customer: str) -> None:
        grant(env, customer, 100 + i, "loyalty", T0 + 10 * DAY)
        grant(env, customer, 50, "promo", T0 + 20 * DAY)
        grant(env, customer, 30, "action", None)
        grant(env, customer, 70, "promo", T0 + 40 * DAY)
        apply(env, customer, f"order-{customer}", 40, T0)

    in_parallel(seed, list(enumerate(customers)))
    return customers


def expected_expired(customers: list[str], at: datetime) -> dict[tuple[str, str], int]:
    """(customer, which bucket) → the points expired by `at`, worked out by hand."""
    out = {}
    for i, customer in enumerate(customers):
        if at >= T_FIRST:
            out[(customer, "A")] = 100 + i - 40
            out[(customer, "B")] = 50
        if at >= T_SECOND:
            out[(customer, "D")] = 70
    return out


def label_buckets(rows: list[BucketRow]) -> dict[tuple[str, str], BucketRow]:
    """Each customer's buckets in creation order are A, B, C, D."""
    labelled: dict[tuple[str, str], BucketRow] = {}
    per_customer: dict[str, list[BucketRow]] = defaultdict(list)
    for row in rows:
        per_customer[row.customer_id].append(row)
    for customer, own in per_customer.items():
        assert [r.source for r in own] == ["loyalty", "promo", "action", "promo"]
        for name, row in zip("ABCD", own, strict=True):
            labelled[(customer, name)] = row
    return labelled


def assert_expired_exactly(env: Env, customers: list[str], at: datetime) -> None:
    expected = expected_expired(customers, at)
    rows = assert_conserved(env)
    labelled = label_buckets(rows)
    entries = expiry_entries(env)
    for key, row in labelled.items():
        points = expected.get(key, 0)
        assert row.expired_points == points, (key, row)
        assert entries.get(row.bucket_id, []) == ([(-points, row.expires_at)] if points else [])
    assert sum(len(e) for e in entries.values()) == len(expected)
    check_invariants(env.url, at)


def test_two_expiry_jobs_at_once_expire_each_bucket_exactly_once(env: Env) -> None:
    customers = seed_accounts(env, CUSTOMERS)
    # Expired at T_FIRST: Σ (60 + i) + 30 × 50 = 30 × 60 + 435 + 1,500 = 3,735 points.
    first_total = sum(60 + i for i in range(CUSTOMERS)) + 50 * CUSTOMERS
    assert first_total == 3_735
    # One job pages through the due accounts 7 at a time, the other all at once; both
    # start together, and (second round) both wait at the first account's lock.
    reports: list[ExpiryReport] = together(
        [
            lambda: expire_points(env.db, now=T_FIRST, batch=7),
            lambda: expire_points(env.db, now=T_FIRST),
        ]
    )
    assert sum(r.points for r in reports) == first_total
    assert_expired_exactly(env, customers, T_FIRST)

    # Twice at once again, later: only D (70 each) is left to expire.
    reports = gated(env.url, [lambda: expire_points(env.db, now=T_SECOND) for _ in range(2)])
    assert sum(r.points for r in reports) == 70 * CUSTOMERS == 2_100
    assert expire_points(env.db, now=T_SECOND).points == 0  # nothing left behind
    assert_expired_exactly(env, customers, T_SECOND)


def test_two_expire_processes_at_once_expire_each_bucket_exactly_once(env: Env) -> None:
    customers = seed_accounts(env, CUSTOMERS)
    expected_total = sum(expected_expired(customers, T_SECOND).values())
    assert expected_total == 3_735 + 2_100
    # Both processes read what is due, then wait at the first account's lock: the test
    # holds every account row until both are waiting, so their work overlaps.
    with accounts_locked(env.url) as wait_for:
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server.main",
                    "expire",
                    "--database-url",
                    env.url,
                    "--allow-clock-override",
                    "--as-of",
                    T_SECOND.isoformat(),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]

        def still_running() -> None:
            for process in processes:
                assert process.poll() is None, process.communicate()

        wait_for(2, still_running)
    expired = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        match = re.search(r"expired (\d+) points in (\d+) accounts", out)
        assert match, out
        expired.append(int(match.group(1)))
    assert sum(expired) == expected_total
    assert expire_points(env.db, now=T_SECOND).points == 0
    assert_expired_exactly(env, customers, T_SECOND)


# ---- the job while applies stream in -----------------------------------------------------

SHOPPERS = 12
T_ROUND = [T0 + 10 * DAY, T0 + 20 * DAY, T0 + 30 * DAY]  # when E, K1 and K2 expire
F_EXPIRES = T0 + 60 * DAY


def test_expiry_job_and_applies_at_once_never_expire_a_spent_point(env: Env) -> None:
    """Customer buckets (granted at T0): E 60 promo (expires T_ROUND[0]), K1 80 promo
    (T_ROUND[1]), K2 90 promo (T_ROUND[2]), F 500 loyalty (T0 + 60 d), G 40 action.

    Round 0, at T_ROUND[0] exactly: E has just expired, so the applies (3 × 20 per
    customer) can only spend K1, first-expiring-first, while two jobs expire E:
    E expires 60, K1 keeps 20 — every total is exact, whatever the interleaving.

    Rounds 1 and 2 race on purpose: applies at 1 ms before K's expiry (which may spend
    it) and at the expiry instant (which may not), against two jobs at that instant.
    Whoever locks the account first wins K's points: they are spent or expired, never
    both, and never lost.
    """
    tag = uuid.uuid4().hex[:8]
    customers = [f"shop-{tag}-{i:02d}" for i in range(SHOPPERS)]

    def seed(customer: str) -> None:
        grant(env, customer, 60, "promo", T_ROUND[0])
        grant(env, customer, 80, "promo", T_ROUND[1])
        grant(env, customer, 90, "promo", T_ROUND[2])
        grant(env, customer, 500, "loyalty", F_EXPIRES)
        grant(env, customer, 40, "action", None)

    in_parallel(seed, [(c,) for c in customers])
    orders = itertools.count()

    def stream(instants: list[datetime], points: int, reverse: bool) -> Callable[[], None]:
        """One thread's applies: every customer, at each instant in turn."""

        def run() -> None:
            for customer in reversed(customers) if reverse else customers:
                for at in instants:
                    apply(env, customer, f"order-{customer}-{next(orders)}", points, at)

        return run

    def race(instants: list[datetime], points: int, job_at: datetime) -> list[ExpiryReport]:
        results = together(
            [
                stream(instants, points, reverse=False),
                stream(instants, points, reverse=True),
                stream(instants, points, reverse=False),
                lambda: expire_points(env.db, now=job_at),
                lambda: expire_points(env.db, now=job_at, batch=3),
            ]
        )
        return [r for r in results if isinstance(r, ExpiryReport)]

    # Round 0: 3 streams × 1 apply of 20 per customer = 60 per customer, all from K1.
    reports = race([T_ROUND[0]], 20, T_ROUND[0])
    assert sum(r.points for r in reports) == 60 * SHOPPERS
    rows = assert_conserved(env)
    per_customer: dict[str, list[BucketRow]] = defaultdict(list)
    for row in rows:
        per_customer[row.customer_id].append(row)
    for customer in customers:
        e, k1, k2, f, g = per_customer[customer]
        assert (e.remaining, e.expired_points) == (0, 60)
        assert (k1.remaining, k2.remaining, f.remaining, g.remaining) == (20, 90, 500, 40)
    check_invariants(env.url, T_ROUND[0])

    # Rounds 1 and 2: 3 streams × (1 ms before + at the instant) × 15 points per customer.
    for expiring, k in ((T_ROUND[1], 1), (T_ROUND[2], 2)):
        before = expiring - timedelta(milliseconds=1)
        race([before, expiring], 15, expiring)
        assert expire_points(env.db, now=expiring).points == 0  # nothing left behind
        rows = assert_conserved(env)
        spent, _ = spent_by_bucket(env)
        per_customer = defaultdict(list)
        for row in rows:
            per_customer[row.customer_id].append(row)
        for customer in customers:
            bucket = per_customer[customer][k]
            assert bucket.remaining == 0
            # All of K went somewhere: spent before its expiry, or expired — not both.
            assert spent[bucket.bucket_id] + bucket.expired_points == bucket.granted
        # Every customer paid 90 points this round: from K (while it lasted) or F, G.
        took = sum(spent[r.bucket_id] for c in customers for r in per_customer[c])
        assert took == SHOPPERS * (60 + 90 * k)
        check_invariants(env.url, expiring)
