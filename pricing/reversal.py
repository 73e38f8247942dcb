"""Returns (docs/rules.md §6): how many points each returned unit gives back or takes back."""

from collections.abc import Sequence
from dataclasses import dataclass

from pricing.errors import ExceedsRemaining, InvalidArgument, Violation
from pricing.money import cumulative_share


@dataclass(frozen=True)
class UnitsLine:
    """Points recorded on one line of an order (spent or earned) and units returned so far."""

    line_id: str
    quantity: int
    points: int
    returned_units: int = 0

    @property
    def remaining_units(self) -> int:
        return self.quantity - self.returned_units


@dataclass(frozen=True)
class ReturnedLine:
    """What the caller says came back: `quantity` units of `line_id`."""

    line_id: str
    quantity: int


@dataclass(frozen=True)
class LineReturn:
    """The effect of a return on one line: units returned now, points moving now."""

    line_id: str
    units: int
    points: int


def units_to_return(
    lines: Sequence[UnitsLine], returned: Sequence[ReturnedLine], *, field: str = "lines"
) -> dict[str, int]:
    """Units returned per line; no lines means everything that remains (docs/rules.md §8)."""
    if not returned:
        return {line.line_id: line.remaining_units for line in lines}
    by_id = {line.line_id: line for line in lines}
    units: dict[str, int] = {}
    violations = []
    for index, item in enumerate(returned):
        if item.line_id not in by_id:
            violations.append(
                Violation(
                    f"{field}[{index}].line_id", f"{item.line_id!r} is not a line of this order"
                )
            )
        elif item.line_id in units:
            violations.append(
                Violation(f"{field}[{index}].line_id", f"{item.line_id!r} is listed twice")
            )
        if item.quantity <= 0:
            violations.append(Violation(f"{field}[{index}].quantity", "must be > 0"))
        units[item.line_id] = item.quantity
    if violations:
        raise InvalidArgument(violations)
    for line_id, count in units.items():
        line = by_id[line_id]
        if count > line.remaining_units:
            raise ExceedsRemaining(line_id=line_id, requested=count, remaining=line.remaining_units)
    return units


def plan_line_returns(lines: Sequence[UnitsLine], units: dict[str, int]) -> list[LineReturn]:
    """Points moving for each returned line: the cumulative floor of docs/rules.md §6.

    After K of n units in total, floor(P × K / n) of a line's P points have
    moved, so returning every unit, in any number of steps, moves exactly P.
    """
    moves = []
    for line in lines:
        count = units.get(line.line_id, 0)
        if count == 0:
            continue
        before = cumulative_share(line.points, done=line.returned_units, of=line.quantity)
        after = cumulative_share(line.points, done=line.returned_units + count, of=line.quantity)
        moves.append(LineReturn(line.line_id, count, after - before))
    return moves
