"""Which lines points may pay for (docs/rules.md §4, "Eligible lines")."""

from dataclasses import dataclass, field

from pricing.cart import Cart, CartLine
from pricing.program import Program


@dataclass(frozen=True)
class ExcludedLine:
    line_id: str
    rule_id: str  # the exclusion rule's id, or "services" for the services setting
    # What the rule matched on the line: "category", "brand", "sku", "tag" or "kind", and
    # the line's value of it (the explanation says it in words).
    matched: str = field(default="", compare=False)
    value: str = field(default="", compare=False)


@dataclass(frozen=True)
class Eligibility:
    eligible: tuple[CartLine, ...]
    excluded: tuple[ExcludedLine, ...]

    # The eligible base: the sum of eligible lines' net. Caps are percentages of it.
    base_minor: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_minor", sum(line.net_minor for line in self.eligible))


def classify(program: Program, cart: Cart) -> Eligibility:
    eligible = []
    excluded = []
    for line in cart.lines:
        found = program.exclusion_match(line)
        if found is None:
            eligible.append(line)
        else:
            excluded.append(ExcludedLine(line.line_id, *found))
    return Eligibility(tuple(eligible), tuple(excluded))
