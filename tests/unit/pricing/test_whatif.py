"""pricing.whatif: recorded orders priced again under the program and under a draft."""

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.caps import Constraint
from pricing.cart import Cart, CartLine, LineKind
from pricing.program import ExclusionRule, Program, load_program
from pricing.tiers import QualifyingOrder
from pricing.whatif import RecordedOrder, Replay, Replayer, price_recorded, replay, summarize

from .conftest import PROGRAMS

MSK = ZoneInfo("Europe/Moscow")
PLACED = datetime(2026, 6, 15, 12, 0, tzinfo=MSK)


def draft(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Program:
    """The shipped program file with `edits` (old text, new text) applied, loaded as at start."""
    text = (PROGRAMS / f"{name}.toml").read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}-draft.toml"
    path.write_text(text, encoding="utf-8")
    return load_program(path)


def partner_history() -> tuple[QualifyingOrder, ...]:
    """10 orders of 50,000 ₽ matured 10..19 days ago: 500,000 ₽ and 10 orders, partner."""
    return tuple(QualifyingOrder(PLACED - timedelta(days=10 + i), 5_000_000) for i in range(10))


def order(
    *lines: CartLine,
    history: tuple[QualifyingOrder, ...] = (),
    spent: dict[str, int] | None = None,
    payment_method: str = "",
    **balances: int,
) -> RecordedOrder:
    spent = spent or {}
    return RecordedOrder(
        order_id="o1",
        customer_id="c1",
        placed_at=PLACED,
        cart=Cart("RUB", lines),
        payment_method=payment_method,
        points_spent=sum(spent.values()),
        spent_by_line=spent,
        balances=balances,
        history=history,
    )


TEN_THOUSAND = CartLine("l1", 1, 1_000_000)  # 10,000.00 ₽


class TestStomatorg:
    def test_partner_cap_lifted_from_10_to_12_percent(
        self, stomatorg: Program, tmp_path: Path
    ) -> None:
        lifted = draft(tmp_path, "stomatorg", ("redeem_cap_bp = 1000", "redeem_cap_bp = 1200"))
        partner = order(TEN_THOUSAND, history=partner_history(), spent={"l1": 1_000}, loyalty=5_000)
        result = replay(stomatorg, lifted, partner)
        # then: 10 % of 1,000,000 = 100,000 minor = 1,000 points (balance 5,000, line 10,000)
        assert result.then.tier_id == "partner"
        assert (result.then.max_points, result.then.binding) == (1_000, Constraint.TIER_CAP)
        # draft: 12 % of 1,000,000 = 120,000 minor = 1,200 points
        assert (result.draft.max_points, result.draft.binding) == (1_200, Constraint.TIER_CAP)
        # earned: (1,000,000 − 1,000 × 100) × 7 % = 63,000 minor = 630 points, both ways
        assert (result.then.points_earned, result.draft.points_earned) == (630, 630)
        assert not result.binding_changed

        base = order(TEN_THOUSAND, spent={"l1": 200}, loyalty=200)
        other = replay(stomatorg, lifted, base)
        # base tier: 3 % of 1,000,000 = 300 points, but only 200 spendable: BALANCE, both ways
        assert (other.then.max_points, other.then.binding) == (200, Constraint.BALANCE)
        assert (other.draft.max_points, other.draft.binding) == (200, Constraint.BALANCE)

        summary = summarize(stomatorg, lifted, [result, other], tiers=["base", "partner"])
        assert summary.by_tier["partner"].max_points_change == 200
        assert summary.by_tier["base"].max_points_change == 0
        assert summary.total.orders == 2
        assert summary.total.max_points_then == 1_200  # 1,000 + 200
        assert summary.total.max_points_draft == 1_400  # 1,200 + 200
        assert summary.total.points_spent == 1_200  # 1,000 + 200 recorded
        assert summary.share_of_change("partner") == (200, 200)

    def test_base_earn_rate_from_3_to_4_percent(self, stomatorg: Program, tmp_path: Path) -> None:
        richer = draft(
            tmp_path,
            "stomatorg",
            ('id = "base"\nearn_rate_bp = 300', 'id = "base"\nearn_rate_bp = 400'),
        )
        result = replay(stomatorg, richer, order(TEN_THOUSAND, spent={"l1": 300}, loyalty=1_000))
        # paid 1,000,000 − 300 × 100 = 970,000 minor: 3 % = 29,100 → 291 points; 4 % = 38,800 → 388
        assert result.then.points_earned == 291
        assert result.draft.points_earned == 388
        # the redeem cap did not move: 300 points both ways
        assert result.then.max_points == result.draft.max_points == 300

    def test_a_kept_promo_under_exclusive(self, stomatorg: Program) -> None:
        # An order delivered with its promo kept: 100,000 of 1,000,000 off by the promo.
        recorded = order(CartLine("l1", 1, 1_000_000, promo_discount_minor=100_000), loyalty=1_000)
        result = replay(stomatorg, stomatorg, recorded)
        # spending drops the promo (docs/rules.md §4): 3 % of 1,000,000 = 300 points
        assert result.then.max_points == 300
        # earning is on what was paid, the promo kept: 900,000 × 3 % = 27,000 → 270 points
        assert result.then.points_earned == 270


class TestDenco:
    def test_an_added_excluded_brand(self, denco: Program, tmp_path: Path) -> None:
        stricter = draft(
            tmp_path,
            "denco",
            ('brands = ["Reima", "Lassie"]', 'brands = ["Reima", "Lassie", "Puma"]'),
        )
        recorded = order(
            CartLine("a", 1, 600_000, brand="Nike"),
            CartLine("b", 1, 400_000, brand="Puma"),
            loyalty=10_000,
        )
        result = replay(denco, stricter, recorded)
        # then: 50 % of 1,000,000 = 500,000 minor = 5,000 points
        assert (result.then.max_points, result.then.binding) == (5_000, Constraint.TIER_CAP)
        # draft: Puma excluded, 50 % of 600,000 = 3,000 points
        assert (result.draft.max_points, result.draft.binding) == (3_000, Constraint.TIER_CAP)
        assert result.then.points_earned == result.draft.points_earned == 0  # denco earns 0 %

    def test_a_lower_card_cap(self, denco: Program, tmp_path: Path) -> None:
        lower = draft(
            tmp_path,
            "denco",
            ("redeem_cap_bp = 9999", "redeem_cap_bp = 8000"),
            ("source_cap_bp = { loyalty = 9999 }", "source_cap_bp = { loyalty = 8000 }"),
        )
        recorded = order(CartLine("a", 1, 100_000), payment_method="denco_card", loyalty=2_000)
        result = replay(denco, lower, recorded)
        # then: 99.99 % of 100,000 = 99,990 minor → 999 points (line takes 1,000); the card's
        # total and loyalty caps are both 999, so removing either alone raises nothing: NONE
        assert (result.then.max_points, result.then.binding) == (999, Constraint.NONE)
        # draft: 80 % of 100,000 = 80,000 minor = 800 points, again both caps at once
        assert (result.draft.max_points, result.draft.binding) == (800, Constraint.NONE)

    def test_the_binding_constraint_changes_when_the_cap_rises_above_the_balance(
        self, denco: Program, tmp_path: Path
    ) -> None:
        lower = draft(
            tmp_path,
            "denco",
            ("redeem_cap_bp = 5000              #", "redeem_cap_bp = 2000              #"),
        )
        recorded = order(CartLine("a", 1, 100_000), loyalty=300)
        result = replay(denco, lower, recorded)
        # then: 50 % → 500 points, only 300 spendable: BALANCE; draft: 20 % → 200: TIER_CAP
        assert (result.then.max_points, result.then.binding) == (300, Constraint.BALANCE)
        assert (result.draft.max_points, result.draft.binding) == (200, Constraint.TIER_CAP)
        assert result.binding_changed
        summary = summarize(denco, lower, [result])
        assert summary.total.binding_changed == 1
        assert summary.total.max_points_change == -100


SHIPPED = {name: load_program(PROGRAMS / f"{name}.toml") for name in ("stomatorg", "denco")}


def _edit(program: Program, edit: str) -> Program:
    """A draft that changes one thing a replay may share between the program and the draft."""
    tiers = program.tiers
    if edit == "cap":
        return replace(
            program, tiers=tuple(replace(t, redeem_cap_bp=t.redeem_cap_bp + 200) for t in tiers)
        )
    if edit == "earn":
        return replace(
            program, tiers=(replace(tiers[0], earn_rate_bp=tiers[0].earn_rate_bp + 100), *tiers[1:])
        )
    if edit == "orders":  # the top tier needs one order (and its spend)
        return replace(program, tiers=(*tiers[:-1], replace(tiers[-1], min_orders=1)))
    if edit == "spend":  # the second tier (stomatorg's regular) needs 10,000.00, not 100,000.00
        i = min(1, len(tiers) - 1)
        cheaper = replace(tiers[i], min_spend_minor=1_000_000)
        return replace(program, tiers=(*tiers[:i], cheaper, *tiers[i + 1 :]))
    if edit == "window":
        return replace(program, tier_window_days=30)
    if edit == "exclusion":
        return replace(
            program, exclusions=(*program.exclusions, ExclusionRule("x", tags=frozenset({"sale"})))
        )
    if edit == "services":
        return replace(program, services_redeemable=not program.services_redeemable)
    if edit == "point_value":
        return replace(program, point_value_minor=37)
    return program


@st.composite
def recorded_orders(draw: st.DrawFn) -> RecordedOrder:
    lines = []
    for index in range(draw(st.integers(1, 5))):
        quantity, unit = draw(st.integers(1, 3)), draw(st.integers(0, 300_000))
        promo = draw(st.just(0) | st.integers(0, quantity * unit))
        lines.append(
            CartLine(
                f"l{index}", quantity, unit,
                brand=draw(st.sampled_from(["", "Reima", "Nike"])),
                tags=draw(st.sampled_from([(), ("sale",), ("no_points",)])),
                kind=draw(st.sampled_from([LineKind.GOODS, LineKind.GOODS, LineKind.SERVICE])),
                promo_discount_minor=promo,
            )
        )  # fmt: skip
    # Orders of one size, so that tiers' spend and order thresholds are both met and missed.
    amount = draw(st.sampled_from([1_000_000, 5_000_000, 20_000_000, 60_000_000]))
    days = draw(st.lists(st.integers(1, 400), max_size=16))  # in a 30 or 365 days' window
    history = tuple(QualifyingOrder(PLACED - timedelta(days=d), amount) for d in days)
    spent = {line.line_id: draw(st.integers(0, 500)) for line in lines if draw(st.booleans())}
    return RecordedOrder(
        order_id="o1",
        customer_id="c1",
        placed_at=PLACED,
        cart=Cart("RUB", tuple(lines)),
        payment_method=draw(st.sampled_from(["", "denco_card", "cash"])),
        points_spent=sum(spent.values()),
        spent_by_line=spent,
        balances={"loyalty": draw(st.integers(0, 20_000)), "action": draw(st.integers(0, 500))},
        history=history,
    )


EDITS = ["none", "cap", "earn", "orders", "spend", "window", "exclusion", "services", "point_value"]


@pytest.mark.parametrize("edit", EDITS)
@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(SHIPPED)), other=st.sampled_from(EDITS), recorded=recorded_orders()
)
def test_what_a_replay_shares_never_changes_a_figure(
    edit: str, name: str, other: str, recorded: RecordedOrder
) -> None:
    """The draft reuses what it leaves unchanged (the eligible lines, the tier, the earnings):
    every figure is still the one each program prices on its own."""
    program = SHIPPED[name]
    changed = _edit(_edit(program, edit), other)
    for then, draft in ((program, changed), (changed, program)):
        alone = Replay(recorded, price_recorded(then, recorded), price_recorded(draft, recorded))
        assert Replayer(then, draft).replay(recorded) == alone
