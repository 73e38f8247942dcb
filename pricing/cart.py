"""The cart (docs/rules.md §3): lines, their net, and validation into field violations."""

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache

from pricing.errors import Violation
from pricing.money import INT64_MAX

MAX_LINES = 1_000
MAX_STRING = 256
# docs/rules.md §3: a cart's total (lines before discounts, plus delivery) is at most 10^15 minor
# units. Every sum of a cart's amounts then stays far inside int64 (≈ 9.22 × 10^18).
MAX_CART_TOTAL_MINOR = 10**15


def match_key(value: str) -> str:
    """A match key (category, brand, sku, tag, payment method) as rules compare it (rules.md §3):
    surrounding whitespace trimmed, case ignored."""
    return value.strip().casefold()


# Category, brand, sku and tags as `match_key` normalises them. Catalogues repeat these
# values across lines and orders, so each combination is normalised once (a bounded cache).
MatchKeys = tuple[str, str, str, frozenset[str]]


@lru_cache(maxsize=16_384)
def match_keys(category: str, brand: str, sku: str, tags: tuple[str, ...]) -> MatchKeys:
    return (
        match_key(category),
        match_key(brand),
        match_key(sku),
        frozenset(match_key(tag) for tag in tags),
    )


class LineKind(Enum):
    GOODS = "GOODS"
    SERVICE = "SERVICE"


@dataclass(frozen=True, init=False)
class CartLine:
    line_id: str
    quantity: int
    unit_price_minor: int
    sku: str = ""
    category: str = ""
    brand: str = ""
    tags: tuple[str, ...] = ()
    kind: LineKind = LineKind.GOODS
    discount_minor: int = 0
    promo_discount_minor: int = 0

    # Derived once at construction: a quote reads them many times.
    gross_minor: int = field(init=False, repr=False, compare=False)
    net_minor: int = field(init=False, repr=False, compare=False)  # after markdown and promo
    # Category, brand, sku and tags as `match_key` normalises them, for exclusion rules.
    match_keys: MatchKeys = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        line_id: str,
        quantity: int,
        unit_price_minor: int,
        sku: str = "",
        category: str = "",
        brand: str = "",
        tags: tuple[str, ...] = (),
        kind: LineKind = LineKind.GOODS,
        discount_minor: int = 0,
        promo_discount_minor: int = 0,
    ) -> None:
        # Every call reads a cart of up to 1,000 lines: one update of the instance's dict
        # instead of a frozen dataclass's object.__setattr__ per field (≈ 6 × cheaper).
        gross = quantity * unit_price_minor
        self.__dict__.update(
            line_id=line_id,
            quantity=quantity,
            unit_price_minor=unit_price_minor,
            sku=sku,
            category=category,
            brand=brand,
            tags=tags,
            kind=kind,
            discount_minor=discount_minor,
            promo_discount_minor=promo_discount_minor,
            gross_minor=gross,
            net_minor=gross - discount_minor - promo_discount_minor,
            match_keys=match_keys(category, brand, sku, tags),
        )

    def without_promo(self) -> "CartLine":
        if not self.promo_discount_minor:
            return self
        return CartLine(
            self.line_id,
            self.quantity,
            self.unit_price_minor,
            self.sku,
            self.category,
            self.brand,
            self.tags,
            self.kind,
            self.discount_minor,
            0,
        )


@dataclass(frozen=True)
class Cart:
    currency: str
    lines: tuple[CartLine, ...]
    delivery_minor: int = 0
    promo_code: str = ""

    @property
    def goods_net_minor(self) -> int:
        return sum(line.net_minor for line in self.lines)

    @property
    def total_minor(self) -> int:
        """What the shopper pays before points: every line's net plus delivery."""
        return self.goods_net_minor + self.delivery_minor

    def without_promo(self) -> "Cart":
        """The cart with its promo code dropped: each line's promo discount comes back."""
        if not self.promo_code and not any(line.promo_discount_minor for line in self.lines):
            return self  # nothing to drop
        lines = tuple(line.without_promo() for line in self.lines)
        return replace(self, lines=lines, promo_code="")

    def line(self, line_id: str) -> CartLine:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise KeyError(line_id)


def validate_string(
    value: str, *, field: str, required: bool, max_len: int = MAX_STRING
) -> list[Violation]:
    """An id or label: present when required, and not longer than `max_len`."""
    if required and not value:
        return [Violation(field, "must not be empty")]
    if len(value) > max_len:
        return [Violation(field, f"must be at most {max_len} characters, got {len(value)}")]
    return []


def validate_cart(cart: Cart, *, field: str = "cart") -> list[Violation]:
    """Every violation of docs/rules.md §3 in the cart, one per offending field."""
    violations = validate_string(cart.currency, field=f"{field}.currency", required=True, max_len=3)
    violations += validate_string(cart.promo_code, field=f"{field}.promo_code", required=False)
    if cart.delivery_minor < 0:
        violations.append(Violation(f"{field}.delivery_minor", "must be >= 0"))
    elif cart.delivery_minor > MAX_CART_TOTAL_MINOR:
        violations.append(
            Violation(f"{field}.delivery_minor", f"must be at most {MAX_CART_TOTAL_MINOR}")
        )
    if not cart.lines:
        violations.append(Violation(f"{field}.lines", "must not be empty"))
    if len(cart.lines) > MAX_LINES:
        violations.append(
            Violation(
                f"{field}.lines", f"must have at most {MAX_LINES} lines, got {len(cart.lines)}"
            )
        )
        return violations
    seen: set[str] = set()
    total = max(cart.delivery_minor, 0)
    for index, line in enumerate(cart.lines):
        if not _is_clean(line):  # field paths are built only for a line with something to say
            violations += _validate_line(line, path=f"{field}.lines[{index}]")
        if line.promo_discount_minor > 0 and not cart.promo_code:
            # The promo discount must name its code, or EXCLUSIVE could be bypassed
            # (docs/rules.md §3).
            violations.append(
                Violation(
                    f"{field}.lines[{index}].promo_discount_minor",
                    "a promo discount needs the cart's promo_code",
                )
            )
        # A line_id already reported (too long) is not reported again as a duplicate.
        if line.line_id and len(line.line_id) <= MAX_STRING and line.line_id in seen:
            violations.append(
                Violation(f"{field}.lines[{index}].line_id", f"duplicate line_id {line.line_id!r}")
            )
        seen.add(line.line_id)
        if _has_valid_factors(line) and line.gross_minor <= INT64_MAX:
            total += line.gross_minor
    if total > MAX_CART_TOTAL_MINOR and cart.delivery_minor <= MAX_CART_TOTAL_MINOR:
        violations.append(
            Violation(
                f"{field}.lines",
                f"the cart's total (lines before discounts, plus delivery) is {total}, "
                f"above {MAX_CART_TOTAL_MINOR}",
            )
        )
    return violations


def _is_clean(line: CartLine) -> bool:
    """True exactly when `_validate_line` finds nothing (the common case, checked cheaply)."""
    return (
        0 < len(line.line_id) <= MAX_STRING
        and len(line.sku) <= MAX_STRING
        and len(line.category) <= MAX_STRING
        and len(line.brand) <= MAX_STRING
        and all(len(tag) <= MAX_STRING for tag in line.tags)
        and line.quantity > 0
        and line.unit_price_minor >= 0
        and line.discount_minor >= 0
        and line.promo_discount_minor >= 0
        and line.gross_minor <= INT64_MAX
        and line.discount_minor + line.promo_discount_minor <= line.gross_minor
    )


def _validate_line(line: CartLine, *, path: str) -> list[Violation]:
    violations = validate_string(line.line_id, field=f"{path}.line_id", required=True)
    for name in ("sku", "category", "brand"):
        violations += validate_string(getattr(line, name), field=f"{path}.{name}", required=False)
    for index, tag in enumerate(line.tags):
        violations += validate_string(tag, field=f"{path}.tags[{index}]", required=False)
    violations += list(_amount_violations(line, path=path))
    return violations


def _has_valid_factors(line: CartLine) -> bool:
    return line.quantity > 0 and line.unit_price_minor >= 0


def _amount_violations(line: CartLine, *, path: str) -> Iterator[Violation]:
    if line.quantity <= 0:
        yield Violation(f"{path}.quantity", "must be > 0")
    for name in ("unit_price_minor", "discount_minor", "promo_discount_minor"):
        if getattr(line, name) < 0:
            yield Violation(f"{path}.{name}", "must be >= 0")
    if not _has_valid_factors(line):
        return  # no meaningful line total; the bad factor is already reported
    gross = line.gross_minor
    if gross > INT64_MAX:
        yield Violation(f"{path}.unit_price_minor", "quantity × unit_price_minor overflows int64")
    elif (
        gross >= 0
        and line.discount_minor >= 0
        and line.promo_discount_minor >= 0
        and line.discount_minor + line.promo_discount_minor > gross
    ):
        yield Violation(
            f"{path}.discount_minor",
            f"discounts ({line.discount_minor} + {line.promo_discount_minor}) exceed the "
            f"line total {gross}",
        )
