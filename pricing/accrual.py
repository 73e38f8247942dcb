"""What a delivered order earns (docs/rules.md §5), and how the earned points split over lines."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pricing.cart import Cart, LineKind
from pricing.money import cap_points, split_largest_remainder
from pricing.program import Program, Tier
from pricing.reversal import UnitsLine


@dataclass(frozen=True)
class AccrualLine:
    """What one delivered line earned: its base and points over `quantity` units."""

    line_id: str
    quantity: int
    base_minor: int
    points: int
    returned_units: int = 0

    def points_units(self) -> UnitsLine:
        return UnitsLine(self.line_id, self.quantity, self.points, self.returned_units)

    def base_units(self) -> UnitsLine:
        """The line's earning base, returned unit by unit like points (for tiers)."""
        return UnitsLine(self.line_id, self.quantity, self.base_minor, self.returned_units)


@dataclass(frozen=True)
class Accrual:
    """What an order earned, as recorded at delivery, and what returns took back since."""

    accrual_id: str
    program_id: str
    order_id: str
    customer_id: str
    points: int
    base_minor: int
    base_returned_minor: int
    points_clawed_back: int
    bucket_id: int | None
    tier_id: str
    earn_rate_bp: int
    program_version: int
    delivered_at: datetime
    available_at: datetime
    expires_at: datetime | None
    created_at: datetime
    lines: tuple[AccrualLine, ...]


@dataclass(frozen=True)
class AccrualPlan:
    points: int
    base_minor: int
    source: str
    lines: tuple[AccrualLine, ...]
    available_at: datetime
    expires_at: datetime | None


def earning_bases(
    cart: Cart, *, spent_by_line: Mapping[str, int], point_value_minor: int
) -> dict[str, int]:
    """Money actually paid for each goods line: its net minus the points spent on it.

    Services and delivery earn nothing (docs/rules.md §5); exclusion rules limit only spending.
    """
    return {
        line.line_id: max(
            line.net_minor - spent_by_line.get(line.line_id, 0) * point_value_minor, 0
        )
        for line in cart.lines
        if line.kind is LineKind.GOODS
    }


def points_to_earn(
    cart: Cart, *, spent_by_line: Mapping[str, int], tier: Tier, point_value_minor: int
) -> int:
    bases = earning_bases(cart, spent_by_line=spent_by_line, point_value_minor=point_value_minor)
    return cap_points(
        sum(bases.values()), cap_bp=tier.earn_rate_bp, point_value_minor=point_value_minor
    )


def plan_accrual(
    program: Program,
    *,
    cart: Cart,
    spent_by_line: Mapping[str, int],
    tier: Tier,
    delivered_at: datetime,
) -> AccrualPlan:
    """Points earned at `tier`'s rate, pending `accrual_delay_days`, expiring per the source."""
    pv = program.point_value_minor
    bases = earning_bases(cart, spent_by_line=spent_by_line, point_value_minor=pv)
    base = sum(bases.values())
    points = cap_points(base, cap_bp=tier.earn_rate_bp, point_value_minor=pv)
    parts = split_largest_remainder(points, list(bases.values()))
    share = dict(zip(bases, parts, strict=True))
    lines = tuple(
        AccrualLine(
            line.line_id, line.quantity, bases.get(line.line_id, 0), share.get(line.line_id, 0)
        )
        for line in cart.lines
    )
    available_at = delivered_at + timedelta(days=program.accrual_delay_days)
    expiry_days = program.sources[program.accrual_source].expiry_days
    expires_at = None if expiry_days is None else available_at + timedelta(days=expiry_days)
    return AccrualPlan(points, base, program.accrual_source, lines, available_at, expires_at)
