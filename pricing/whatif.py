"""What-if (docs/rules.md §11): a recorded order priced again under the program and under a draft.

The replay asks the very functions a live quote asks (`solve_maximum`,
`points_to_earn`, `tier_status`); nothing here decides a rule of its own.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime

from pricing.accrual import points_to_earn
from pricing.caps import Constraint
from pricing.cart import Cart
from pricing.eligibility import Eligibility, classify
from pricing.program import Program, PromoPolicy, Tier
from pricing.quote import solve_maximum
from pricing.tiers import QualifyingOrder, tier_status


@dataclass(frozen=True)
class RecordedOrder:
    """An order as the service recorded it, and the customer's state when it was placed."""

    order_id: str
    customer_id: str
    placed_at: datetime
    cart: Cart
    payment_method: str
    points_spent: int  # what its live redemption spent (0: none)
    spent_by_line: Mapping[str, int]  # those points per line
    balances: Mapping[str, int]  # spendable points per source just before it was placed
    history: tuple[QualifyingOrder, ...]  # the customer's matured accruals, for the tier
    # False for orders recorded before lines were kept whole (their prices are unknown):
    # they are counted, not priced.
    whole: bool = True


@dataclass(frozen=True)
class Priced:
    """One order under one program: its tier, the most it could take, what it would earn."""

    tier_id: str
    max_points: int
    binding: Constraint
    points_earned: int


@dataclass(frozen=True)
class Replay:
    order: RecordedOrder
    then: Priced
    draft: Priced

    @property
    def binding_changed(self) -> bool:
        return self.then.binding is not self.draft.binding


def price_recorded(program: Program, order: RecordedOrder) -> Priced:
    """The order's maximum and earnings under `program`, at the tier it would have had then."""
    return _price(program, order, _tier_at(program, order), _eligibility(program, order))


def _price(
    program: Program,
    order: RecordedOrder,
    tier: Tier,
    eligibility: Eligibility,
    *,
    earned: int | None = None,
) -> Priced:
    maximum, binding = solve_maximum(
        program,
        eligibility,
        tier=tier,
        payment_method=order.payment_method,
        balances=order.balances,
    )
    if earned is None:
        earned = points_to_earn(
            order.cart,  # what the order earns on is what it recorded, promo or not
            spent_by_line=order.spent_by_line,
            tier=tier,
            point_value_minor=program.point_value_minor,
        )
    return Priced(tier.id, maximum, binding, earned)


def _eligibility(program: Program, order: RecordedOrder) -> Eligibility:
    spending = order.cart
    if program.promo_policy is PromoPolicy.EXCLUSIVE:
        # Points and a promo never share an order (docs/rules.md §4): the option that spends points
        # is the cart with its promo discounts back.
        spending = order.cart.without_promo()
    return classify(program, spending)


def _tier_at(program: Program, order: RecordedOrder) -> Tier:
    if len(program.tiers) == 1:
        return program.tiers[0]
    return tier_status(program, order.history, now=order.placed_at).tier


class Replayer:
    """Prices recorded orders under the program in force and under a draft.

    What a draft leaves as it was is worked out once per order and used for both: the
    eligible lines when the draft keeps the promo policy, services setting and exclusions
    (all that `classify` reads); the tier when it keeps the tiers' thresholds, the window
    and the time zone (all that `tier_status` reads), and then what the order earns when
    the tier's earn rate and the point value stay. Each is the same function's answer on
    the same inputs: a replay's figures are those of `price_recorded`, only cheaper.
    """

    def __init__(self, program: Program, draft: Program) -> None:
        self.program, self.draft = program, draft
        self._same_lines = _lines_rules(program) == _lines_rules(draft)
        self._same_tiers = _tier_rules(program) == _tier_rules(draft)

    def replay(self, order: RecordedOrder) -> Replay:
        program, draft = self.program, self.draft
        tier, eligibility = _tier_at(program, order), _eligibility(program, order)
        then = _price(program, order, tier, eligibility)
        draft_tier = draft.tier(tier.id) if self._same_tiers else _tier_at(draft, order)
        if not self._same_lines:
            eligibility = _eligibility(draft, order)
        earned = None
        if (draft_tier.earn_rate_bp, draft.point_value_minor) == (
            tier.earn_rate_bp,
            program.point_value_minor,
        ):
            earned = then.points_earned
        return Replay(order, then, _price(draft, order, draft_tier, eligibility, earned=earned))


def _lines_rules(program: Program) -> tuple[object, ...]:
    return (program.promo_policy, program.services_redeemable, program.exclusions)


def _tier_rules(program: Program) -> tuple[object, ...]:
    thresholds = tuple((t.id, t.min_spend_minor, t.min_orders) for t in program.tiers)
    return (thresholds, program.tier_window_days, program.time_zone)


def replay(program: Program, draft: Program, order: RecordedOrder) -> Replay:
    """One order under the program in force and under the draft."""
    return Replayer(program, draft).replay(order)


@dataclass
class Totals:
    """Sums over a group of replayed orders (a tier, or every order)."""

    orders: int = 0
    max_points_then: int = 0
    max_points_draft: int = 0
    points_spent: int = 0
    points_earned_then: int = 0
    points_earned_draft: int = 0
    binding_changed: int = 0

    def add(self, replayed: Replay) -> None:
        self.orders += 1
        self.max_points_then += replayed.then.max_points
        self.max_points_draft += replayed.draft.max_points
        self.points_spent += replayed.order.points_spent
        self.points_earned_then += replayed.then.points_earned
        self.points_earned_draft += replayed.draft.points_earned
        self.binding_changed += replayed.binding_changed

    def merge(self, other: "Totals") -> None:
        """Add another group's sums (a part of the orders replayed elsewhere)."""
        for name in _SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def max_points_change(self) -> int:
        return self.max_points_draft - self.max_points_then

    @property
    def points_earned_change(self) -> int:
        return self.points_earned_draft - self.points_earned_then


_SUMS = tuple(f.name for f in fields(Totals))


@dataclass
class Summary:
    """Per tier (the tier each order had under the program in force) and in total."""

    point_value_minor: int
    draft_point_value_minor: int
    by_tier: dict[str, Totals] = field(default_factory=dict)
    total: Totals = field(default_factory=Totals)
    not_whole: int = 0  # orders left out: recorded without their whole lines

    def add(self, replayed: Replay) -> None:
        self.by_tier.setdefault(replayed.then.tier_id, Totals()).add(replayed)
        self.total.add(replayed)

    def merge(self, other: "Summary") -> None:
        """Add a summary of other orders of the same program and draft."""
        for tier_id, totals in other.by_tier.items():
            self.by_tier.setdefault(tier_id, Totals()).merge(totals)
        self.total.merge(other.total)
        self.not_whole += other.not_whole

    def share_of_change(self, tier_id: str) -> tuple[int, int]:
        """A tier's part of the total change in spendable points, as (part, whole)."""
        return self.by_tier[tier_id].max_points_change, self.total.max_points_change


def summarize(
    program: Program, draft: Program, replays: Iterable[Replay], *, tiers: Iterable[str] = ()
) -> Summary:
    """Every replay added up; `tiers` are listed even when no order had them."""
    summary = Summary(program.point_value_minor, draft.point_value_minor)
    for tier_id in tiers:
        summary.by_tier[tier_id] = Totals()
    for replayed in replays:
        summary.add(replayed)
    return summary
