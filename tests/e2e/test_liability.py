"""The finance reports over a real server (docs/rules.md §8, §11), on both backends.

One program-wide history, built once per backend on a database of its own, with every
figure worked out by hand below. stomatorg: 1 point = 100 minor (RUB); base tier earns
3 % and caps spending at 3 %; accruals mature 7 days after delivery and expire 90 days
later; promo points expire 90 days after they become spendable unless granted with an
expiry; action points never expire; months are Europe/Moscow (UTC+3).

T0 = 2026-03-01 09:00 UTC; dN = T0 + N days.

* Alice: d0 grant 1000 promo (expires d90), 500 action; d0 order A1 delivered: 1 × 10,000 ₽
  → 3 % = 300 loyalty, mature d7, expire d97. d10 spends 200 (cap 300): from promo first
  (it expires first) → promo 800.
* Bob: d0 order B1 delivered, 2 × 5,000 ₽ → 300, mature d7. d8 spends 300 (all of it).
  d20 returns 1 of 2 units of B1: 150 to claw back, nothing left to take → debt 150.
  2026-03-31 22:00 UTC (01:00 on 1 April in Moscow) grant 100 promo → pays debt → debt 50.
  d40 order B2 delivered: 1 × 2,000 ₽ → 60, matures d47 and pays the 50 of debt then → 10
  left. Nothing is written on Bob after d40: that settlement is only ever read.
* Carol: d0 grant 400 action. d59 holds 50 for 30 days (deadline d89); d60 holds 100 for
  one hour, which lapses at d60 + 1 h, unwritten until the expiry job.
* Dave: d0 grant 600 promo expiring d200. d5 spends 300 on D1 (3 × 3,334 ₽ = 10,002 ₽, cap
  3 % = 300.06 → 300). d15 returns 1 of 3 units: floor(300 × 1/3) = 100 back → promo 400.
  d70 spends 100 more → 300.
* Frank: d0 order F1 delivered 1 × 10,000 ₽ → 300, mature d7; d8 spends 300; d21 returns
  all of F1: 300 to claw back, nothing left → debt 300.
* Grace: d45 grant 70 loyalty (expires d135).
* Eve: d60 order E1 delivered, 2 × 500 ₽ → 30, matures d67 (pending at d61), expires d157;
  d80 returns 1 of 2 units: floor(30 × 1/2) = 15 clawed back from its own bucket.
* d95: the expiry job runs: Alice's 800 promo (expired d90) and Carol's two lapses (d60 +
  1 h, d89) are written down. Alice's 300 loyalty expiring d97 is still unwritten at d100.
"""

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest

from loyalty.client.cli import main as loyalty_cli
from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import reporting_service_pb2 as pb
from tests.e2e.builders import (
    TIMEOUT,
    account,
    accrue,
    apply_request,
    cart,
    days,
    grant,
    hold_request,
    line,
    reverse_request,
    ts,
    when,
)
from tests.e2e.rpc_errors import expect_error
from tests.support.server import ROOT, ServerProcess, Stubs, run_expiry_job

PROGRAM = "stomatorg"
HOUR = timedelta(hours=1)
D61, D100 = days(61), days(100)
W1 = (days(30), D61)  # (start, end]
W2 = (D61, D100)
CUSTOMERS = ("alice", "bob", "carol", "dave", "frank", "grace", "eve")


def big_cart() -> object:
    return cart(line("q", 1, 1_000_000))  # 10,000 ₽: cap 3 % = 300 points


@dataclass
class History:
    stubs: Stubs
    url: str
    address: str
    w1_before_job: pb.GetLiabilityRollForwardResponse
    liability_d61: pb.GetLiabilityResponse


def _spend(stubs: Stubs, who: str, order: str, points: int, at: datetime) -> None:
    stubs.redemption.ApplyRedemption(
        apply_request(PROGRAM, who, order, big_cart(), points, as_of=at), timeout=TIMEOUT
    )


def _return(stubs: Stubs, order: str, *lines: tuple[str, int], at: datetime) -> object:
    return stubs.redemption.ReverseRedemption(
        reverse_request(PROGRAM, order, *lines, as_of=at), timeout=TIMEOUT
    )


def _earn(stubs: Stubs, who: str, order: str, the_cart: object, at: datetime) -> int:
    return accrue(stubs, PROGRAM, who, order, the_cart, delivered_at=at, as_of=at).points


def _hold(stubs: Stubs, who: str, order: str, points: int, seconds: int, at: datetime) -> None:
    request = hold_request(PROGRAM, who, order, big_cart(), points, hold_seconds=seconds, as_of=at)
    stubs.redemption.ApplyRedemption(request, timeout=TIMEOUT)


def liability(stubs: Stubs, at: datetime) -> pb.GetLiabilityResponse:
    request = pb.GetLiabilityRequest(program_id=PROGRAM, as_of=ts(at))
    return stubs.reporting.GetLiability(request, timeout=TIMEOUT)


def roll_forward(
    stubs: Stubs, window: tuple[datetime, datetime], at: datetime
) -> pb.GetLiabilityRollForwardResponse:
    request = pb.GetLiabilityRollForwardRequest(
        program_id=PROGRAM, start_time=ts(window[0]), end_time=ts(window[1]), as_of=ts(at)
    )
    return stubs.reporting.GetLiabilityRollForward(request, timeout=TIMEOUT)


def build(stubs: Stubs) -> None:
    s = stubs
    grant(s, PROGRAM, "alice", 1000, "promo", as_of=days(0))
    grant(s, PROGRAM, "alice", 500, "action", as_of=days(0))
    assert _earn(s, "alice", "A1", big_cart(), days(0)) == 300
    assert _earn(s, "bob", "B1", cart(line("b", 2, 500_000)), days(0)) == 300
    grant(s, PROGRAM, "carol", 400, "action", as_of=days(0))
    grant(s, PROGRAM, "dave", 600, "promo", as_of=days(0), expires_at=days(200))
    assert _earn(s, "frank", "F1", big_cart(), days(0)) == 300
    d1 = cart(line("q", 3, 333_400))  # 3 × 3,334 ₽ = 10,002 ₽: cap 300.06 → 300
    s.redemption.ApplyRedemption(
        apply_request(PROGRAM, "dave", "D1", d1, 300, as_of=days(5)), timeout=TIMEOUT
    )
    _spend(s, "bob", "B3", 300, days(8))
    _spend(s, "frank", "F2", 300, days(8))
    _spend(s, "alice", "A2", 200, days(10))
    assert _return(s, "D1", ("q", 1), at=days(15)).points_returned == 100  # type: ignore[attr-defined]
    assert _return(s, "B1", ("b", 1), at=days(20)).debt_points == 150  # type: ignore[attr-defined]
    assert _return(s, "F1", at=days(21)).debt_points == 300  # type: ignore[attr-defined]
    paid = grant(s, PROGRAM, "bob", 100, "promo", as_of=days(30) + 13 * HOUR)
    assert (paid.balance_after, paid.debt_points) == (0, 50)
    assert _earn(s, "bob", "B2", cart(line("b2", 1, 200_000)), days(40)) == 60
    grant(s, PROGRAM, "grace", 70, "loyalty", as_of=days(45))
    _hold(s, "carol", "C2", 50, 30 * 24 * 3600, days(59))
    _hold(s, "carol", "C1", 100, 3600, days(60))
    assert _earn(s, "eve", "E1", cart(line("e", 2, 50_000)), days(60)) == 30


def build_after_d61(stubs: Stubs, url: str) -> None:
    _spend(stubs, "dave", "D2", 100, days(70))
    assert _return(stubs, "E1", ("e", 1), at=days(80)).points_clawed_back == 15  # type: ignore[attr-defined]
    run_expiry_job(url, days(95))


@pytest.fixture(scope="module")
def history(server: ServerProcess, db_url: str) -> Iterator[History]:
    stubs = server.stubs()
    build(stubs)
    # Read before anything is written after d61: the lapse and Bob's settlement are due only.
    before = roll_forward(stubs, W1, D61)
    at_d61 = liability(stubs, D61)
    build_after_d61(stubs, db_url)
    yield History(stubs, db_url, server.address, before, at_d61)


def bands(response: pb.GetLiabilityResponse) -> list[tuple[int, int, bool, int, int]]:
    return [
        (b.from_days, b.to_days, b.never_expires, b.points, b.value_minor)
        for b in response.expiry_bands
    ]


def test_liability_at_d61_by_hand(history: History) -> None:
    got = history.liability_d61
    # Spendable: Alice promo 800 + loyalty 300 + action 500 = 1600; Bob 60 − 50 of debt = 10;
    # Carol 400 − 50 − 100 + 100 (lapsed) = 350; Dave 400; Grace 70 → 2430.
    assert got.spendable_points == 2430
    assert (got.pending_points, got.held_points, got.debt_points) == (30, 50, 300)
    # promo 800 + 400; loyalty 300 + 10 + 70; action 500 + 350.
    assert dict(got.by_source) == {"promo": 1200, "loyalty": 380, "action": 850}
    # From d61: promo d90 is 29 days away; loyalty d97 36; Bob's d137 76 and Grace's d135
    # 74; Dave's d200 139; the never-expiring action 850.
    assert bands(got) == [
        (0, 30, False, 800, 80_000),
        (30, 60, False, 300, 30_000),
        (60, 90, False, 80, 8_000),
        (90, 365, False, 400, 40_000),
        (365, 0, False, 0, 0),
        (0, 0, True, 850, 85_000),
    ]
    assert got.value_minor == 243_000  # 2430 × 100
    assert (got.pending_value_minor, got.held_value_minor, got.debt_value_minor) == (
        3_000,
        5_000,
        30_000,
    )
    # Holding points: Alice, Bob, Carol, Dave, Grace, Eve (pending); Frank only owes.
    assert (got.customers, got.customers_in_debt) == (6, 1)
    assert (got.currency, got.point_value_minor, when(got.as_of)) == ("RUB", 100, D61)


def test_liability_at_d100_by_hand_and_the_accounts_agree(history: History) -> None:
    got = liability(history.stubs, D100)
    # Alice: promo expired d90 (written), loyalty expired d97 (not yet): 500 action. Bob 10;
    # Carol 400 (both holds back); Dave 300; Grace 70; Eve 30 − 15 = 15 → 1295.
    assert got.spendable_points == 1295
    assert (got.pending_points, got.held_points, got.debt_points) == (0, 0, 300)
    assert dict(got.by_source) == {"action": 900, "loyalty": 95, "promo": 300}
    # From d100: Bob d137 37 days, Eve d157 57, Grace d135 35 → 95; Dave d200 100 days.
    assert bands(got) == [
        (0, 30, False, 0, 0),
        (30, 60, False, 95, 9_500),
        (60, 90, False, 0, 0),
        (90, 365, False, 300, 30_000),
        (365, 0, False, 0, 0),
        (0, 0, True, 900, 90_000),
    ]
    assert (got.customers, got.customers_in_debt) == (6, 1)
    accounts = [account(history.stubs, PROGRAM, c, as_of=D100) for c in CUSTOMERS]
    assert sum(a.spendable_points for a in accounts) == got.spendable_points
    assert sum(a.debt_points for a in accounts) == got.debt_points
    assert sum(a.held_points for a in accounts) == got.held_points
    assert sum(a.pending_points for a in accounts) == got.pending_points


def test_roll_forward_of_the_first_window_by_hand(history: History) -> None:
    got = history.w1_before_job
    # Opening at d30: Alice 1600, Bob −150 (debt), Carol 400, Dave 400, Frank −300 → 1950.
    assert got.opening_points == 1950
    # In (d30, d61]: Bob's promo grant 100 (paid debt: issued in full), B2's 60 at d47,
    # Grace's 70; Carol's holds 50 + 100, and the lapse of 100 at d60 + 1 h.
    assert dict(got.issued) == {"promo": 100, "loyalty": 130}
    assert (got.reinstated_points, got.redeemed_points) == (100, 150)
    assert (got.expired_points, got.clawed_back_points, got.debt_incurred_points) == (0, 0, 0)
    # 1950 + 230 + 100 − 150 = 2130 = 2430 spendable − 300 debt at d61.
    assert got.closing_points == 2130
    assert (got.opening_value_minor, got.closing_value_minor) == (195_000, 213_000)
    assert got.issued_value_minor == 23_000
    # March (Moscow): every d0/d7 credit; outstanding = what their buckets still hold by the
    # ledger: Alice 1600, Carol 350, Dave 400, Bob's and Frank's B1/F1 nothing → 2350.
    # April: Bob's grant at 01:00 on 1 April Moscow time (still 31 March in UTC), B2, Grace.
    assert [(c.month, c.issued_points, c.redeemed_points, c.expired_points,
             c.outstanding_points) for c in got.cohorts] == [
        ("2026-03", 0, 150, 0, 2350),
        ("2026-04", 230, 0, 0, 230),
    ]  # fmt: skip
    assert [c.outstanding_value_minor for c in got.cohorts] == [235_000, 23_000]


def test_the_first_window_is_the_same_once_the_job_wrote_it_down(history: History) -> None:
    # The lapse at d60 + 1 h was due at d61 and is written since; the figures are the same.
    assert roll_forward(history.stubs, W1, D100) == history.w1_before_job


def test_roll_forward_of_the_second_window_by_hand(history: History) -> None:
    got = roll_forward(history.stubs, W2, D100)
    assert got.opening_points == 2130
    # Eve's 30 at d67; Carol's hold of 50 lapsed at d89; Dave spent 100 at d70; Alice's
    # 800 promo expired d90 (written) and 300 loyalty d97 (due); Eve's 15 clawed back.
    assert dict(got.issued) == {"loyalty": 30}
    assert (got.reinstated_points, got.redeemed_points, got.expired_points) == (50, 100, 1100)
    assert (got.clawed_back_points, got.debt_incurred_points) == (15, 0)
    assert dict(got.expired_by_source) == {"loyalty": 300, "promo": 800}
    # 2130 + 30 + 50 − 100 − 1100 − 15 = 995 = 1295 − 300.
    assert got.closing_points == 995
    assert [(c.month, c.issued_points, c.redeemed_points, c.expired_points,
             c.outstanding_points) for c in got.cohorts] == [
        ("2026-03", 0, 100, 1100, 1200),
        ("2026-04", 0, 0, 0, 230),
        ("2026-05", 30, 0, 0, 15),
    ]  # fmt: skip


def test_a_window_must_be_in_the_past_and_start_before_it_ends(history: History) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    method = history.stubs.reporting.GetLiabilityRollForward
    for (start, end), at, field in (
        ((D61, D100), D61, "end_time"),  # ends after the call's instant
        ((D100, D61), D100, "start_time"),
    ):
        request = pb.GetLiabilityRollForwardRequest(
            program_id=PROGRAM, start_time=ts(start), end_time=ts(end), as_of=ts(at)
        )
        expect_error(method, request, invalid, "INVALID_REQUEST", fields=[field])
    no_start = pb.GetLiabilityRollForwardRequest(program_id=PROGRAM, as_of=ts(D61))
    expect_error(method, no_start, invalid, "INVALID_REQUEST", fields=["start_time"])
    unknown = pb.GetLiabilityRequest(program_id="nope", as_of=ts(D61))
    expect_error(
        history.stubs.reporting.GetLiability,
        unknown,
        grpc.StatusCode.NOT_FOUND,
        "PROGRAM_NOT_FOUND",
        metadata={"program_id": "nope"},
    )


def _server_report(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.main", "report", *args, "--program", PROGRAM,
         "--database-url", url],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_loyalty_server_report_reads_the_database(history: History, tmp_path: Path) -> None:
    done = _server_report(history.url, "liability", "--as-of", D100.isoformat(), "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["section", "item", "points", "value_minor", "currency"]
    assert ["total", "spendable", "1295", "129500", "RUB"] in rows
    assert ["expiry", "never expire", "900", "90000", "RUB"] in rows
    chart = tmp_path / "roll-forward.png"
    done = _server_report(
        history.url, "roll-forward", "--from", W2[0].isoformat(), "--to", W2[1].isoformat(),
        "--as-of", D100.isoformat(), "--chart", str(chart),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    print(done.stdout)  # what a finance person reads
    assert "  opening           2,130   2,130.00 RUB" in done.stdout
    assert "  expired          -1,100  -1,100.00 RUB" in done.stdout
    assert "  closing             995     995.00 RUB" in done.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = _server_report(history.url, "roll-forward", "--from", D100.isoformat(),
                         "--to", D61.isoformat(), "--as-of", D100.isoformat())  # fmt: skip
    assert (bad.returncode, bad.stderr.strip()) == (
        1,
        "report: start_time: must be before end_time",
    )


def test_the_loyalty_cli_asks_the_server(history: History, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    chart = tmp_path / "bands.svg"
    code = loyalty_cli(
        ["--server", history.address, "report", "liability", "--program", PROGRAM,
         "--as-of", D100.isoformat(), "--format", "json", "--chart", str(chart)],
        stdout=out, stderr=err, environ={},
    )  # fmt: skip
    assert code == 0, err.getvalue()
    got = json.loads(out.getvalue())
    assert (got["spendablePoints"], got["debtPoints"], got["valueMinor"]) == (
        "1295",
        "300",
        "129500",
    )
    assert chart.read_text().lstrip().startswith("<?xml")
    out = io.StringIO()
    code = loyalty_cli(
        ["--server", history.address, "report", "roll-forward", "--program", PROGRAM,
         "--from", W1[0].isoformat(), "--to", W1[1].isoformat(), "--as-of", D100.isoformat()],
        stdout=out, stderr=err, environ={},
    )  # fmt: skip
    assert code == 0, err.getvalue()
    assert "  issued: loyalty    +130    130.00 RUB" in out.getvalue()
    assert "  closing           2,130  2,130.00 RUB" in out.getvalue()
    assert "  2026-04     230         0        0          230    230.00 RUB" in out.getvalue()


def test_only_finance_and_admin_may_read_the_reports(db_url: str, tmp_path: Path) -> None:
    tokens = {"finance": "f" * 24, "checkout": "c" * 24, "admin": "a" * 24}
    process = ServerProcess(
        db_url, log_path=tmp_path / "server.log",
        env={"LOYALTY_TOKENS": ",".join(f"{t}={role}" for role, t in tokens.items())},
    ).start()  # fmt: skip
    try:
        stubs = process.stubs()

        def as_role(role: str) -> list[tuple[str, str]]:
            return [("authorization", f"Bearer {tokens[role]}")]

        request = pb.GetLiabilityRequest(program_id=PROGRAM, as_of=ts(D61))
        for role in ("finance", "admin"):
            got = stubs.reporting.GetLiability(request, timeout=TIMEOUT, metadata=as_role(role))
            assert got.spendable_points >= 0
        with pytest.raises(grpc.RpcError) as caught:
            stubs.reporting.GetLiability(request, timeout=TIMEOUT, metadata=as_role("checkout"))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as caught:
            stubs.account.GetAccount(
                account_pb.GetAccountRequest(program_id=PROGRAM, customer_id="alice"),
                timeout=TIMEOUT, metadata=as_role("finance"),
            )  # fmt: skip
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        process.stop()
