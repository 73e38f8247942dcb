"""Domain errors: small classes that carry the facts a caller needs.

Each error is a dataclass: its fields are its facts, and `facts` turns them into
`ErrorInfo.metadata` (string to string), so no class writes its metadata by hand.
The service maps each class to a gRPC status and an `ErrorInfo` reason in one
table (server/api/errors.py); nothing here knows about status codes.
"""

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

# The `metadata` of a dataclass field that is not an ErrorInfo fact (it travels elsewhere).
NOT_A_FACT: dict[str, Any] = {"fact": False}


def facts(error: BaseException) -> dict[str, str]:
    """`error`'s dataclass fields as `ErrorInfo.metadata`, each value as a string."""
    if not is_dataclass(error):
        return {}
    return {
        f.metadata.get("fact_name", f.name): str(getattr(error, f.name))
        for f in fields(error)
        if f.metadata.get("fact", True)
    }


@dataclass(frozen=True)
class Violation:
    """One offending field of a request: its path (`cart.lines[2].quantity`) and what is wrong."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def metadata(self) -> dict[str, str]:
        """Facts for `ErrorInfo.metadata`: the error's fields."""
        return facts(self)


@dataclass(eq=False)
class InvalidArgument(DomainError):
    """The request is malformed; each offending field is named (in a BadRequest)."""

    violations: list[Violation] = field(metadata=NOT_A_FACT)

    def __post_init__(self) -> None:
        first = self.violations[0]
        more = f" (and {len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        super().__init__(f"{first.field}: {first.description}{more}")


class UnknownSource(InvalidArgument):
    """A points source the program does not have."""

    def __init__(self, *, field: str, source: str, known: list[str]) -> None:
        description = f"unknown source {source!r}; this program has {', '.join(known)}"
        super().__init__([Violation(field, description)])
        self.source = source  # named in the shopper's sentence (server/texts)


@dataclass(eq=False)
class ProgramNotFound(DomainError):
    program_id: str

    def __post_init__(self) -> None:
        super().__init__(f"no program {self.program_id!r}")


@dataclass(eq=False, kw_only=True)
class CurrencyMismatch(DomainError):
    expected: str
    got: str

    def __post_init__(self) -> None:
        super().__init__(f"the program prices in {self.expected}, the cart is in {self.got}")


@dataclass(eq=False)
class PromoConflict(DomainError):
    """Points and a promo code cannot both apply under the EXCLUSIVE policy."""

    promo_code: str

    def __post_init__(self) -> None:
        super().__init__(
            f"promo code {self.promo_code!r} excludes points under this program; "
            "drop the promo code to spend points"
        )


@dataclass(eq=False, kw_only=True)
class AllOrNothing(DomainError):
    """ALL_OR_NOTHING programs take exactly the maximum (DENCO rule 1.4)."""

    requested: int
    maximum: int

    def __post_init__(self) -> None:
        super().__init__(
            f"this program spends exactly {self.maximum} points or none; asked {self.requested}"
        )


@dataclass(eq=False, kw_only=True)
class ExceedsMaximum(DomainError):
    requested: int
    maximum: int

    def __post_init__(self) -> None:
        super().__init__(
            f"asked to spend {self.requested} points; this cart allows at most {self.maximum}"
        )


@dataclass(eq=False, kw_only=True)
class ExceedsRemaining(DomainError):
    line_id: str
    requested: int
    remaining: int

    def __post_init__(self) -> None:
        super().__init__(
            f"line {self.line_id!r}: asked to return {self.requested} units, "
            f"{self.remaining} remain"
        )


@dataclass(eq=False)
class OrderNotFound(DomainError):
    order_id: str

    def __post_init__(self) -> None:
        super().__init__(f"no redemption or accrual for order {self.order_id!r}")


@dataclass(eq=False)
class OrderAlreadyRedeemed(DomainError):
    order_id: str

    def __post_init__(self) -> None:
        super().__init__(f"order {self.order_id!r} already has a redemption")


@dataclass(eq=False)
class OrderAlreadyAccrued(DomainError):
    order_id: str

    def __post_init__(self) -> None:
        super().__init__(f"order {self.order_id!r} already has an accrual")


@dataclass(eq=False)
class HoldExpired(DomainError):
    order_id: str

    def __post_init__(self) -> None:
        super().__init__(f"the hold on order {self.order_id!r} lapsed before capture")


@dataclass(eq=False)
class HoldReleased(DomainError):
    order_id: str

    def __post_init__(self) -> None:
        super().__init__(f"the hold on order {self.order_id!r} was released; it cannot be captured")


@dataclass(eq=False, kw_only=True)
class OrderCustomerMismatch(DomainError):
    """The order belongs to another customer (docs/rules.md §6: an order is one thing)."""

    order_id: str
    customer_id: str

    def __post_init__(self) -> None:
        super().__init__(
            f"order {self.order_id!r} belongs to another customer than {self.customer_id!r}"
        )


@dataclass(eq=False)
class AccrualMismatch(DomainError):
    """An accrual's lines are not the delivered part of the order's lines (docs/rules.md §6)."""

    order_id: str
    violations: list[Violation] = field(metadata=NOT_A_FACT)

    def __post_init__(self) -> None:
        first = self.violations[0]
        more = f" (and {len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        super().__init__(
            f"the accrual does not match order {self.order_id!r}: "
            f"{first.field}: {first.description}{more}"
        )


@dataclass(eq=False, kw_only=True)
class InvalidTransition(DomainError):
    """A redemption asked to move to a state its state machine does not allow.

    Use cases check the state first (HOLD_EXPIRED, HOLD_RELEASED ...); this is the guard
    behind them, so it is a bug when a caller reaches it.
    """

    source: str = field(metadata={"fact_name": "from"})
    target: str = field(metadata={"fact_name": "to"})

    def __post_init__(self) -> None:
        super().__init__(f"a redemption cannot go from {self.source} to {self.target}")
