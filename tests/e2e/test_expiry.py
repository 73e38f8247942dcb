"""Expiry over a real server and the `expire` subcommand, on a database per test.

The expiry job writes off every expired point of the whole database, so each test here
gets a fresh database and server: the counts it prints are this test's alone. Numbers are
worked out by hand (docs/rules.md §5–§7): stomatorg accruals earn 3 % at base, mature 7 days after
delivery and expire 90 days after maturity; `action` points never expire. A bucket is
spendable while available_at ≤ t < expires_at. Once the job has run up to t, the ledger
entries effective at or before t sum to spendable − debt.
"""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loyalty.v1 import account_service_pb2 as a
from tests.e2e.builders import (
    TIMEOUT,
    account,
    accrue,
    apply_request,
    cart,
    days,
    grant,
    ledger,
    line,
    new_id,
    quote,
    reverse_request,
    when,
)
from tests.support.databases import database_url
from tests.support.server import ROOT, ServerProcess, Stubs

SECOND = timedelta(seconds=1)
ACCRUAL, CLAWBACK, DEBT, EXPIRY, GRANT, REDEMPTION = (
    a.LEDGER_ENTRY_KIND_ACCRUAL,
    a.LEDGER_ENTRY_KIND_CLAWBACK,
    a.LEDGER_ENTRY_KIND_DEBT,
    a.LEDGER_ENTRY_KIND_EXPIRY,
    a.LEDGER_ENTRY_KIND_GRANT,
    a.LEDGER_ENTRY_KIND_REDEMPTION,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class Fresh:
    """A server on a database of its own, and the expiry job run against that database."""

    def __init__(self, url: str, stubs: Stubs) -> None:
        self.url = url
        self.stubs = stubs

    def expire(self, as_of: datetime) -> tuple[int, int]:
        """Run `python -m server.main expire` up to `as_of`: (points, accounts) it expired."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
        done = subprocess.run(
            [
                sys.executable, "-m", "server.main", "expire",
                "--database-url", self.url,
                "--allow-clock-override",
                "--as-of", as_of.isoformat(),
            ],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        found = re.search(r"expired (\d+) points in (\d+) accounts", done.stdout)
        assert found, done.stdout
        return int(found[1]), int(found[2])


@pytest.fixture
def fresh(backend: str, tmp_path: Path) -> Iterator[Fresh]:
    with database_url(backend, tmp_path) as url:
        process = ServerProcess(url, log_path=tmp_path / "server.log").start()
        try:
            yield Fresh(url, process.stubs())
        finally:
            process.stop()


Entry = tuple[int, int, str, str, datetime]  # kind, points, source, order_id, effective_at


def entries(stubs: Stubs, program_id: str, customer_id: str, *, as_of: datetime) -> list[Entry]:
    found, token = [], ""
    while True:
        page = ledger(stubs, program_id, customer_id, as_of=as_of, page_token=token)
        found += [
            (e.kind, e.points, e.source, e.order_id, when(e.effective_at)) for e in page.entries
        ]
        if not page.next_page_token:
            return found
        token = page.next_page_token


def entry_ids(stubs: Stubs, customer_id: str, *, as_of: datetime) -> list[str]:
    return [e.entry_id for e in ledger(stubs, "stomatorg", customer_id, as_of=as_of).entries]


def holds(stubs: Stubs, customer_id: str, *, as_of: datetime) -> tuple[int, int, int]:
    """(spendable − debt, the ledger's sum up to as_of, debt): the first two must agree."""
    got = account(stubs, "stomatorg", customer_id, as_of=as_of)
    total = sum(e[1] for e in entries(stubs, "stomatorg", customer_id, as_of=as_of))
    return got.spendable_points - got.debt_points, total, got.debt_points


def test_points_expire_exactly_at_expires_at_and_the_job_writes_it_down_once(
    fresh: Fresh,
) -> None:
    stubs = fresh.stubs
    alice, bob = new_id("alice"), new_id("bob")
    order = new_id("order")
    # Alice: an order delivered at T0 (2026-03-01 09:00 UTC), 1 × 1,000,000 → 3 % = 300
    # points, mature 8 March 09:00, expire 90 days later: 6 June 09:00 UTC. 50 action
    # points never expire.
    earned = accrue(
        stubs, "stomatorg", alice, order, cart(line("a", 1, 1_000_000)),
        delivered_at=days(0), as_of=days(0),
    )  # fmt: skip
    expires_at = utc(2026, 6, 6, 9)
    assert (earned.points, when(earned.expires_at)) == (300, expires_at)
    grant(stubs, "stomatorg", alice, 50, "action", as_of=days(0))
    # 10 March: she spends 120 (cap 3 % of 1,000,000 = 300), from the expiring loyalty
    # bucket first: 180 loyalty + 50 action are left.
    spent = stubs.redemption.ApplyRedemption(
        apply_request(
            "stomatorg", alice, new_id("o"), cart(line("q", 1, 1_000_000)), 120, as_of=days(9)
        ),
        timeout=TIMEOUT,
    )
    assert spent.balance_after == 230
    # Bob: 70 promo points that expire on 1 April 00:00 UTC.
    grant(stubs, "stomatorg", bob, 70, "promo", as_of=days(0), expires_at=utc(2026, 4, 1))

    last_second = account(stubs, "stomatorg", alice, as_of=expires_at - SECOND)
    assert last_second.spendable_points == 230
    assert dict(last_second.balances_by_source) == {"loyalty": 180, "action": 50}
    assert (when(last_second.next_expiry.expires_at), last_second.next_expiry.points) == (
        expires_at,
        180,
    )
    # At expires_at the loyalty points are gone, whether or not the job has run.
    gone = account(stubs, "stomatorg", alice, as_of=expires_at)
    assert gone.spendable_points == 50
    assert dict(gone.balances_by_source) == {"action": 50}
    assert not gone.HasField("next_expiry")
    assert (
        quote(
            stubs, "stomatorg", alice, cart(line("q", 1, 1_000_000)), as_of=expires_at
        ).spendable_points
        == 50
    )

    # The job one second before Alice's expiry: only Bob's 70 (expired 1 April).
    assert fresh.expire(expires_at - SECOND) == (70, 1)
    assert [e[0] for e in entries(stubs, "stomatorg", alice, as_of=expires_at)] == [
        GRANT,
        ACCRUAL,
        REDEMPTION,
    ]
    # Two days later: Alice's 180, written at the expiry instant, not at the job's as_of.
    after = expires_at + timedelta(days=2)
    assert fresh.expire(after) == (180, 1)
    rows = entries(stubs, "stomatorg", alice, as_of=after)
    assert [e[:3] + e[4:] for e in rows] == [
        (GRANT, 50, "action", days(0)),
        (ACCRUAL, 300, "loyalty", days(7)),
        (REDEMPTION, -120, "loyalty", days(9)),
        (EXPIRY, -180, "loyalty", expires_at),
    ]
    # 50 + 300 − 120 − 180 = 50 = spendable 50 − debt 0; Bob: 70 − 70 = 0.
    assert holds(stubs, alice, as_of=after) == (50, 50, 0)
    assert [e[:2] + e[4:] for e in entries(stubs, "stomatorg", bob, as_of=after)] == [
        (GRANT, 70, days(0)),
        (EXPIRY, -70, utc(2026, 4, 1)),
    ]
    assert holds(stubs, bob, as_of=after) == (0, 0, 0)

    # Run again: nothing more to expire, nothing written.
    before_ids = entry_ids(stubs, alice, as_of=after), entry_ids(stubs, bob, as_of=after)
    assert fresh.expire(after) == (0, 0)
    assert (entry_ids(stubs, alice, as_of=after), entry_ids(stubs, bob, as_of=after)) == (
        before_ids
    )
    # Action points never expire: ten years on they are still there, and the job agrees.
    decade = utc(2036, 3, 1)
    assert fresh.expire(decade) == (0, 0)
    assert holds(stubs, alice, as_of=decade) == (50, 50, 0)


def test_ledger_sums_to_spendable_minus_debt_through_clawback_expiry_and_debt(
    fresh: Fresh,
) -> None:
    stubs = fresh.stubs
    customer = new_id("c")
    o1, o2 = new_id("o1"), new_id("o2")
    # Day 0: 100 promo expiring on day 20; o1 (2 × 1,000,000 → 3 % = 600 points) delivered,
    # maturing on day 7.
    grant(stubs, "stomatorg", customer, 100, "promo", as_of=days(0), expires_at=days(20))
    earned = accrue(
        stubs, "stomatorg", customer, o1, cart(line("k", 2, 1_000_000)),
        delivered_at=days(0), as_of=days(0),
    )  # fmt: skip
    assert earned.points == 600
    # Day 1: one unit back while pending: floor(600 × 1/2) = 300 leave the pending bucket,
    # effective at maturity.
    first = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", o1, ("k", 1), as_of=days(1)), timeout=TIMEOUT
    )
    assert (first.points_clawed_back, first.debt_points, first.balance_after) == (300, 0, 100)
    assert [e[:2] for e in entries(stubs, "stomatorg", customer, as_of=days(1))] == [(GRANT, 100)]
    assert holds(stubs, customer, as_of=days(1)) == (100, 100, 0)
    # Day 7: 100 + 600 − 300 = 400 = promo 100 + loyalty 300.
    assert [e[:2] + e[4:] for e in entries(stubs, "stomatorg", customer, as_of=days(7))] == [
        (GRANT, 100, days(0)),
        (ACCRUAL, 600, days(7)),
        (CLAWBACK, -300, days(7)),
    ]
    assert holds(stubs, customer, as_of=days(7)) == (400, 400, 0)

    # The job on day 30: the promo expired on day 20.
    assert fresh.expire(days(30)) == (100, 1)
    assert entries(stubs, "stomatorg", customer, as_of=days(30))[-1] == (
        EXPIRY, -100, "promo", "", days(20),
    )  # fmt: skip
    assert holds(stubs, customer, as_of=days(30)) == (300, 300, 0)

    # Day 31: o1 counts 2,000,000 − 1,000,000 = 1,000,000, one order: base, cap 3 % of
    # 1,000,000 = 300: all 300 go on o2. Day 32: the other unit of o1 comes back: 300 to
    # take, its bucket is empty and nothing else is spendable → 300 owed.
    spent = stubs.redemption.ApplyRedemption(
        apply_request(
            "stomatorg", customer, o2, cart(line("n", 1, 1_000_000)), 300, as_of=days(31)
        ),
        timeout=TIMEOUT,
    )
    assert spent.balance_after == 0
    rest = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", o1, as_of=days(32)), timeout=TIMEOUT
    )
    assert (rest.points_clawed_back, rest.debt_points, rest.balance_after) == (0, 300, 0)
    # Day 33: 50 action points pay debt first: 250 owed.
    paid = grant(stubs, "stomatorg", customer, 50, "action", as_of=days(33))
    assert (paid.balance_after, paid.debt_points) == (0, 250)
    # Day 200: o1's loyalty bucket (expires day 97) is empty; nothing expires.
    assert fresh.expire(days(200)) == (0, 0)
    rows = entries(stubs, "stomatorg", customer, as_of=days(200))
    assert [e[:2] for e in rows] == [
        (GRANT, 100),
        (ACCRUAL, 600),
        (CLAWBACK, -300),
        (EXPIRY, -100),
        (REDEMPTION, -300),
        (DEBT, -300),
        (GRANT, 50),
    ]
    # 100 + 600 − 300 − 100 − 300 − 300 + 50 = −250 = spendable 0 − debt 250.
    assert holds(stubs, customer, as_of=days(200)) == (-250, -250, 250)


def test_an_accrual_that_matures_into_debt_pays_it_before_what_is_left_expires(
    fresh: Fresh,
) -> None:
    stubs = fresh.stubs
    customer = new_id("c")
    o1, o2, o3 = new_id("o1"), new_id("o2"), new_id("o3")
    # o1: 1,000,000 → 300 points, mature day 7, spent on o2 on day 8, returned on day 9:
    # nothing to take → 300 owed.
    one_million = cart(line("m", 1, 1_000_000))
    accrue(stubs, "stomatorg", customer, o1, one_million, delivered_at=days(0), as_of=days(0))
    stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, o2, one_million, 300, as_of=days(8)), timeout=TIMEOUT
    )
    back = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", o1, as_of=days(9)), timeout=TIMEOUT
    )
    assert (back.points_clawed_back, back.debt_points) == (0, 300)
    # o3 on day 9 (o1 no longer counts: base, 3 %): 2,000,000 → 600 points, mature day 16,
    # expire day 106. Nothing else is written until the job runs.
    third = accrue(
        stubs, "stomatorg", customer, o3, cart(line("p", 2, 1_000_000)),
        delivered_at=days(9), as_of=days(9),
    )  # fmt: skip
    assert (third.points, when(third.expires_at)) == (600, days(106))
    # At maturity the 600 pay the 300 owed; 300 are left until day 106.
    assert account(stubs, "stomatorg", customer, as_of=days(16) - SECOND).debt_points == 300
    matured = account(stubs, "stomatorg", customer, as_of=days(16))
    assert (matured.spendable_points, matured.debt_points) == (300, 0)
    assert account(stubs, "stomatorg", customer, as_of=days(106) - SECOND).spendable_points == 300
    assert account(stubs, "stomatorg", customer, as_of=days(106)).spendable_points == 0
    # The job expires only what was left after the debt: 300.
    assert fresh.expire(days(120)) == (300, 1)
    rows = entries(stubs, "stomatorg", customer, as_of=days(120))
    assert [e[:2] + e[4:] for e in rows] == [
        (ACCRUAL, 300, days(7)),
        (REDEMPTION, -300, days(8)),
        (DEBT, -300, days(9)),
        (ACCRUAL, 600, days(16)),
        (EXPIRY, -300, days(106)),
    ]
    # 300 − 300 − 300 + 600 − 300 = 0 = spendable 0 − debt 0.
    assert holds(stubs, customer, as_of=days(120)) == (0, 0, 0)


def test_returning_an_order_whose_points_expired_unspent_takes_nothing_else(
    fresh: Fresh,
) -> None:
    stubs = fresh.stubs
    customer = new_id("c")
    o1, o2 = new_id("o1"), new_id("o2")
    # o1: 2 × 500,000 = 1,000,000 → 300 points, mature day 7, expire day 97. 50 action
    # points that never expire. Day 8: 100 of o1's points pay for o2 (first-expiring-first).
    accrue(
        stubs, "stomatorg", customer, o1, cart(line("m", 2, 500_000)),
        delivered_at=days(0), as_of=days(0),
    )  # fmt: skip
    grant(stubs, "stomatorg", customer, 50, "action", as_of=days(0))
    spent = stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, o2, cart(line("n", 1, 1_000_000)), 100, as_of=days(8)),
        timeout=TIMEOUT,
    )
    assert spent.balance_after == 250
    # Day 97: the 200 of o1's points left expire unspent.
    assert account(stubs, "stomatorg", customer, as_of=days(97)).spendable_points == 50

    # Day 100, before any expiry job: one unit of o1 back, floor(300 × 1/2) = 150 to take
    # back. They come out of o1's own bucket, whose 200 expired points were never spent:
    # nothing else is taken, nothing is owed.
    first = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", o1, ("m", 1), as_of=days(100)), timeout=TIMEOUT
    )
    assert (first.points_clawed_back, first.debt_points, first.balance_after) == (150, 0, 50)
    # The job writes off what is left in the bucket: 200 − 150 = 50, at day 97.
    assert fresh.expire(days(110)) == (50, 1)
    assert holds(stubs, customer, as_of=days(110)) == (50, 50, 0)

    # Day 111: the other unit, 150 more. The bucket's 50 written-off points were never
    # spent either; the other 100 were spent on o2: they come from the 50 action points,
    # and 50 are owed.
    second = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", o1, ("m", 1), as_of=days(111)), timeout=TIMEOUT
    )
    assert (second.points_clawed_back, second.debt_points, second.balance_after) == (100, 50, 0)
    rows = entries(stubs, "stomatorg", customer, as_of=days(111))
    assert [e[:3] + e[4:] for e in rows] == [
        (GRANT, 50, "action", days(0)),
        (ACCRUAL, 300, "loyalty", days(7)),
        (REDEMPTION, -100, "loyalty", days(8)),
        (EXPIRY, -50, "loyalty", days(97)),
        (CLAWBACK, -150, "loyalty", days(100)),
        (CLAWBACK, -50, "action", days(111)),
        (DEBT, -50, "", days(111)),
    ]
    # 50 + 300 − 100 − 50 − 150 − 50 − 50 = −50 = spendable 0 − debt 50.
    assert holds(stubs, customer, as_of=days(111)) == (-50, -50, 50)
