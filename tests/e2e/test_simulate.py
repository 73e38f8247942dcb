"""`loyalty-server simulate` (docs/rules.md §11) on orders recorded by a real server, both backends.

Each test records its orders in a window of its own (the module shares one
database), then replays that window under a draft file and checks every
figure, worked out by hand from the shipped programs.
"""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.builders import (
    GOODS,
    TIMEOUT,
    accrue_request,
    apply_request,
    cart,
    grant,
    line,
    new_id,
    quote,
)
from tests.support.server import ROOT, ServerProcess, Stubs

PROGRAMS = ROOT / "programs"


def simulate(
    database_url: str,
    program: str,
    draft: Path,
    start: datetime,
    end: datetime,
    *more: str,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable, "-m", "server.main", "simulate",
        "--database-url", database_url,
        "--program", program, "--draft", str(draft),
        "--from", start.isoformat(), "--to", end.isoformat(), *more,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def report(database_url: str, program: str, draft: Path, start: datetime, end: datetime) -> Any:
    done = simulate(database_url, program, draft, start, end, "--format", "json", "--per-order")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def draft_file(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    text = (PROGRAMS / f"{name}.toml").read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}-draft.toml"
    path.write_text(text, encoding="utf-8")
    return path


def apply(stubs: Stubs, program: str, customer: str, order: str, the_cart: Any, points: int,
          *, at: datetime, payment_method: str = "") -> None:  # fmt: skip
    stubs.redemption.ApplyRedemption(
        apply_request(program, customer, order, the_cart, points, as_of=at,
                      payment_method=payment_method),
        timeout=TIMEOUT,
    )  # fmt: skip


def partner(stubs: Stubs, customer: str, *, at: datetime) -> None:
    """Ten delivered orders of 50,000 ₽ that matured 23 days before `at`: partner tier."""
    for _ in range(10):
        stubs.account.AccrueOrder(
            accrue_request(
                "stomatorg", customer, new_id("history"),
                cart(line("h", 1, 5_000_000, kind=GOODS)),
                delivered_at=at - timedelta(days=30), as_of=at,
            ),
            timeout=TIMEOUT,
        )  # fmt: skip


TEN_THOUSAND = cart(line("l1", 1, 1_000_000, kind=GOODS))  # 10,000.00 ₽


def test_stomatorg_partner_cap_from_10_to_12_percent(
    stubs: Stubs, server: ServerProcess, db_url: str, tmp_path: Path
) -> None:
    t0 = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
    at = t0 + timedelta(days=10)
    p, b = new_id("partner"), new_id("base")
    partner(stubs, p, at=t0)  # recorded at t0: outside the window below
    grant(stubs, "stomatorg", p, 100_000, "action", as_of=t0)
    grant(stubs, "stomatorg", b, 200, "action", as_of=t0)
    # partner: 10 % of 10,000 ₽ = 1,000 points; base: 3 % = 300, but 200 spendable
    apply(stubs, "stomatorg", p, new_id("o"), TEN_THOUSAND, 1_000, at=at)
    apply(stubs, "stomatorg", b, new_id("o"), TEN_THOUSAND, 200, at=at)
    draft = draft_file(tmp_path, "stomatorg", ("redeem_cap_bp = 1000", "redeem_cap_bp = 1200"))

    result = report(db_url, "stomatorg", draft, at - timedelta(hours=1), at + timedelta(hours=1))

    by_tier = result["by_tier"]
    # partner: 1,000 → 12 % = 1,200 (+200); earned (1,000,000 − 100,000) × 7 % → 630 both ways
    assert by_tier["partner"] == {
        "orders": 1, "max_points_then": 1_000, "max_points_draft": 1_200,
        "max_points_change": 200, "points_spent": 1_000, "points_earned_then": 630,
        "points_earned_draft": 630, "points_earned_change": 0, "binding_changed": 0,
        "max_value_change_minor": 20_000, "earned_value_change_minor": 0,
    }  # fmt: skip
    # base: 200 (BALANCE) both ways; earned (1,000,000 − 20,000) × 3 % = 29,400 → 294
    assert by_tier["base"]["max_points_then"] == by_tier["base"]["max_points_draft"] == 200
    assert by_tier["base"]["points_earned_then"] == 294
    assert by_tier["regular"]["orders"] == by_tier["vip"]["orders"] == 0
    total = result["total"]
    assert (total["orders"], total["max_points_then"], total["max_points_draft"]) == (
        2,
        1_200,
        1_400,
    )
    assert (total["points_spent"], total["points_earned_then"]) == (1_200, 924)
    assert total["max_value_change_minor"] == 20_000  # 200 points × 100 minor
    bindings = {(o["binding_then"], o["binding_draft"]) for o in result["orders"]}
    assert bindings == {("TIER_CAP", "TIER_CAP"), ("BALANCE", "BALANCE")}


def test_stomatorg_base_earn_rate_from_3_to_4_percent(
    stubs: Stubs, db_url: str, tmp_path: Path
) -> None:
    at = datetime(2025, 2, 10, 9, 0, tzinfo=UTC)
    b = new_id("base")
    grant(stubs, "stomatorg", b, 1_000, "action", as_of=at)
    apply(stubs, "stomatorg", b, new_id("o"), TEN_THOUSAND, 300, at=at)
    edit = ('id = "base"\nearn_rate_bp = 300', 'id = "base"\nearn_rate_bp = 400')
    draft = draft_file(tmp_path, "stomatorg", edit)

    total = report(db_url, "stomatorg", draft, at, at + timedelta(seconds=1))["total"]

    # paid 1,000,000 − 300 × 100 = 970,000: 3 % = 29,100 → 291; 4 % = 38,800 → 388
    assert (total["points_earned_then"], total["points_earned_draft"]) == (291, 388)
    assert total["points_earned_change"] == 97
    assert total["earned_value_change_minor"] == 9_700
    assert total["max_points_change"] == 0  # 300 both ways


def test_denco_an_added_excluded_brand_and_a_lower_card_cap(
    stubs: Stubs, db_url: str, tmp_path: Path
) -> None:
    at = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
    d, c = new_id("d"), new_id("card")
    grant(stubs, "denco", d, 10_000, "loyalty", as_of=at)
    grant(stubs, "denco", c, 2_000, "loyalty", as_of=at)
    brands = cart(line("a", 1, 600_000, brand="Nike"), line("b", 1, 400_000, brand="Puma"))
    apply(stubs, "denco", d, new_id("o"), brands, 5_000, at=at)  # 50 % of 10,000 ₽
    one = cart(line("a", 1, 100_000))
    apply(stubs, "denco", c, new_id("o"), one, 999, at=at, payment_method="denco_card")
    window = (at, at + timedelta(seconds=1))

    puma = draft_file(
        tmp_path, "denco", ('brands = ["Reima", "Lassie"]', 'brands = ["Reima", "Lassie", "Puma"]')
    )
    orders = {o["points_spent"]: o for o in report(db_url, "denco", puma, *window)["orders"]}
    # Puma excluded: 50 % of 6,000 ₽ = 3,000 points instead of 5,000
    assert (orders[5_000]["max_points_then"], orders[5_000]["max_points_draft"]) == (5_000, 3_000)
    assert orders[999]["max_points_draft"] == 999  # the card order has no Puma

    (tmp_path / "card").mkdir()
    lower = draft_file(
        tmp_path / "card",
        "denco",
        ("redeem_cap_bp = 9999", "redeem_cap_bp = 8000"),
        ("source_cap_bp = { loyalty = 9999 }", "source_cap_bp = { loyalty = 8000 }"),
    )
    result = report(db_url, "denco", lower, *window)
    orders = {o["points_spent"]: o for o in result["orders"]}
    # 99.99 % of 1,000 ₽ → 999 points; 80 % → 800
    assert (orders[999]["max_points_then"], orders[999]["max_points_draft"]) == (999, 800)
    assert orders[5_000]["max_points_draft"] == 5_000  # no card: 50 %, unchanged
    assert result["total"]["max_points_change"] == -199
    assert result["total"]["max_value_change_minor"] == -19_900


def test_workers_over_customer_ranges_report_what_one_process_does(
    stubs: Stubs, db_url: str, tmp_path: Path
) -> None:
    """Three workers, each in the snapshot the command exported, give the one-process report
    figure for figure and order for order (on SQLite one process replays, whatever asked)."""
    t0 = datetime(2025, 2, 3, 9, 0, tzinfo=UTC)
    at = t0 + timedelta(days=10)
    customers = [new_id("w") for _ in range(6)]
    for n, customer in enumerate(customers):
        if n % 2:
            partner(stubs, customer, at=t0)
        grant(stubs, "stomatorg", customer, 2_000 + 700 * n, "action", as_of=t0)
        for k in range(2):
            moment = at + timedelta(minutes=n + 10 * k)
            apply(
                stubs,
                "stomatorg",
                customer,
                new_id("o"),
                TEN_THOUSAND,
                100 * (n % 3 + 1),
                at=moment,
            )
    draft = draft_file(tmp_path, "stomatorg", ("redeem_cap_bp = 1000", "redeem_cap_bp = 1200"))
    window = (at, at + timedelta(hours=1))

    one = simulate(db_url, "stomatorg", draft, *window, "--format", "json", "--per-order",
                   "--workers", "1")  # fmt: skip
    three = simulate(db_url, "stomatorg", draft, *window, "--format", "json", "--per-order",
                     "--workers", "3")  # fmt: skip
    assert one.returncode == three.returncode == 0, one.stderr + three.stderr
    assert json.loads(three.stdout) == json.loads(one.stdout)
    total = json.loads(one.stdout)["total"]
    # three partners × 2 orders: 10 % → 12 % of 10,000 ₽, +200 points each
    assert (total["orders"], total["max_points_change"]) == (12, 1_200)


def test_text_csv_and_chart(stubs: Stubs, db_url: str, tmp_path: Path) -> None:
    """The run docs/whatif.md and the README show: its output is this test's, word for word."""
    at = datetime(2025, 4, 10, 9, 0, tzinfo=UTC)
    p, b = new_id("partner"), new_id("base")
    partner(stubs, p, at=at - timedelta(days=10))
    grant(stubs, "stomatorg", p, 100_000, "action", as_of=at)
    grant(stubs, "stomatorg", b, 1_000, "action", as_of=at)
    apply(stubs, "stomatorg", p, new_id("o"), TEN_THOUSAND, 1_000, at=at)
    apply(stubs, "stomatorg", b, new_id("o"), TEN_THOUSAND, 300, at=at)
    draft_file(tmp_path, "stomatorg", ("redeem_cap_bp = 1000", "redeem_cap_bp = 1200"))
    draft = Path("stomatorg-draft.toml")  # as the document's command names it
    window = (at, at + timedelta(seconds=1))

    text = simulate(db_url, "stomatorg", draft, *window, "--chart", "whatif.png", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    # partner: 10 % → 1,000 points, 12 % → 1,200: +200 points, 200.00 RUB; base unchanged
    assert "spendable: +200 points (RUB200.00)" in text.stdout
    assert "partner carries 100.0 % of the change in spendable points" in text.stdout
    assert text.stdout in (ROOT / "docs" / "whatif.md").read_text(encoding="utf-8")
    assert text.stdout in (ROOT / "README.md").read_text(encoding="utf-8")  # shown there too
    assert (tmp_path / "whatif.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    csv = simulate(db_url, "stomatorg", draft, *window, "--format", "csv", cwd=tmp_path)
    # base: 1 order, 300 → 300, spent 300, earned (1,000,000 − 30,000) × 3 % = 29,100 → 291
    assert csv.stdout.splitlines()[1] == "base,1,300,300,0,300,291,291,0,0"
    # partner: 1,000 → 1,200, spent 1,000, earned 900,000 × 7 % = 63,000 → 630
    assert csv.stdout.splitlines()[3] == "partner,1,1000,1200,200,1000,630,630,0,0"


def test_a_bad_draft_is_refused_as_at_start(db_url: str, tmp_path: Path) -> None:
    draft = draft_file(tmp_path, "stomatorg", ("redeem_cap_bp = 1000", "redeem_cap_bp = -5"))
    at = datetime(2025, 5, 1, tzinfo=UTC)
    done = simulate(db_url, "stomatorg", draft, at, at + timedelta(days=1))
    assert done.returncode == 2
    assert "redeem_cap_bp" in done.stderr
    assert "Traceback" not in done.stderr


_windows = iter(range(1_000_000))  # each example replays a minute of its own


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    orders=st.lists(
        st.tuples(
            st.integers(0, 3),  # which customer
            st.integers(1, 3),  # lines
            st.integers(1, 300_000),  # unit price, minor
            st.integers(0, 5_000),  # points granted first
            st.booleans(),  # delivered (accrued) too
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_program_as_its_own_draft_changes_nothing(
    stubs: Stubs, db_url: str, orders: list[tuple[int, int, int, int, bool]]
) -> None:
    start = datetime(2025, 6, 1, tzinfo=UTC) + timedelta(minutes=next(_windows))
    customers = [new_id("c") for _ in range(4)]
    for i, (who, lines, price, granted, delivered) in enumerate(orders):
        moment, customer, order = start + timedelta(seconds=i), customers[who], new_id("o")
        if granted:
            grant(stubs, "stomatorg", customer, granted, "action", as_of=moment)
        the_cart = cart(*(line(f"l{n}", 1, price, kind=GOODS) for n in range(lines)))
        most = quote(stubs, "stomatorg", customer, the_cart, as_of=moment).options[0].max_points
        if most:
            apply(stubs, "stomatorg", customer, order, the_cart, most // 2 or most, at=moment)
        if delivered or not most:
            stubs.account.AccrueOrder(
                accrue_request("stomatorg", customer, order, the_cart,
                               delivered_at=moment, as_of=moment),
                timeout=TIMEOUT,
            )  # fmt: skip
    shipped = PROGRAMS / "stomatorg.toml"
    result = report(db_url, "stomatorg", shipped, start, start + timedelta(minutes=1))
    assert result["total"]["orders"] == len(orders)
    assert result["total"]["max_points_change"] == 0
    assert result["total"]["points_earned_change"] == 0
    assert result["total"]["binding_changed"] == 0
