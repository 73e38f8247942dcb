"""The caps of docs/rules.md §4, solved together, and the constraint that binds."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from pricing.money import cap_points
from pricing.program import Program, Tier


class Constraint(Enum):
    NONE = "NONE"
    NO_ELIGIBLE_LINES = "NO_ELIGIBLE_LINES"
    PROMO_CONFLICT = "PROMO_CONFLICT"
    TIER_CAP = "TIER_CAP"
    SOURCE_CAP = "SOURCE_CAP"
    BALANCE = "BALANCE"
    LINE_GRANULARITY = "LINE_GRANULARITY"


@dataclass(frozen=True)
class CapRates:
    """The caps in force for one order, in basis points of the eligible base."""

    total_bp: int
    source_bp: Mapping[str, int | None]  # None: the source has no cap of its own
    payment_method: str | None = None  # the payment method whose caps these are, if any


def cap_rates(program: Program, *, tier: Tier, payment_method: str) -> CapRates:
    """The tier's and sources' caps, or the payment method's where it overrides them."""
    sources = program.sources.values()
    override = program.payment_override(payment_method)
    if override is None:
        return CapRates(tier.redeem_cap_bp, {s.id: s.cap_bp for s in sources})
    # Sources the override does not name take its default, else keep their own cap.
    source_bp = {
        s.id: override.source_cap_bp.get(
            s.id,
            s.cap_bp if override.other_sources_cap_bp is None else override.other_sources_cap_bp,
        )
        for s in sources
    }
    return CapRates(override.redeem_cap_bp, source_bp, override.id)


@dataclass(frozen=True)
class Caps:
    """Every limit on one order's points, in whole points."""

    tier_cap: int
    source_caps: Mapping[str, int | None]
    balances: Mapping[str, int]
    line_granularity: int

    @classmethod
    def build(
        cls,
        rates: CapRates,
        *,
        eligible_base_minor: int,
        point_value_minor: int,
        balances: Mapping[str, int],
        line_granularity: int,
    ) -> "Caps":
        def points(bp: int | None) -> int | None:
            if bp is None:
                return None
            return cap_points(eligible_base_minor, cap_bp=bp, point_value_minor=point_value_minor)

        return cls(
            tier_cap=cap_points(
                eligible_base_minor, cap_bp=rates.total_bp, point_value_minor=point_value_minor
            ),
            source_caps={source: points(bp) for source, bp in rates.source_bp.items()},
            balances=dict(balances),
            line_granularity=line_granularity,
        )

    def source_limits(self) -> dict[str, int | None]:
        """What each source may still give to this order: its cap, if it has one."""
        return dict(self.source_caps)

    def maximum(self, *, without: Constraint | None = None) -> int | None:
        """The largest total that fits every cap, optionally with one removed (None: unbounded)."""
        by_source = [self._source_room(source, without) for source in self._sources()]
        finite_rooms = [room for room in by_source if room is not None]
        source_total = sum(finite_rooms) if len(finite_rooms) == len(by_source) else None
        bounds = [
            None if without is Constraint.TIER_CAP else self.tier_cap,
            None if without is Constraint.LINE_GRANULARITY else self.line_granularity,
            source_total,
        ]
        finite = [b for b in bounds if b is not None]
        return min(finite) if finite else None

    def _sources(self) -> list[str]:
        return sorted(set(self.source_caps) | set(self.balances))

    def _source_room(self, source: str, without: Constraint | None) -> int | None:
        cap = None if without is Constraint.SOURCE_CAP else self.source_caps.get(source)
        balance = None if without is Constraint.BALANCE else self.balances.get(source, 0)
        finite = [b for b in (cap, balance) if b is not None]
        return min(finite) if finite else None

    def capped_sources(self) -> list[str]:
        """The sources whose own cap, not their balance, limits what they give (by id)."""
        return [
            source
            for source in self._sources()
            if (cap := self.source_caps.get(source)) is not None
            and cap < self.balances.get(source, 0)
        ]

    def solve(self) -> tuple[int, Constraint]:
        """The maximum and the first constraint whose removal alone would raise it."""
        maximum = self.maximum()
        assert maximum is not None  # the tier cap is always finite
        for constraint in (
            Constraint.TIER_CAP,
            Constraint.SOURCE_CAP,
            Constraint.BALANCE,
            Constraint.LINE_GRANULARITY,
        ):
            relaxed = self.maximum(without=constraint)
            if relaxed is None or relaxed > maximum:
                return maximum, constraint
        return maximum, Constraint.NONE
