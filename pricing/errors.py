"""Domain errors: small classes that carry the facts a caller needs.

The service maps each class to a gRPC status and an `ErrorInfo` reason in one
table (server/api/errors.py); nothing here knows about status codes.
"""

from dataclasses import dataclass


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
        """Facts for `ErrorInfo.metadata` (string to string)."""
        return {}


class InvalidArgument(DomainError):
    """The request is malformed; each offending field is named."""

    def __init__(self, violations: list[Violation], *, reason: str = "INVALID_REQUEST") -> None:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"{first.field}: {first.description}{more}")
        self.violations = violations
        self.reason = reason


class UnknownSource(InvalidArgument):
    """A points source the program does not have."""

    def __init__(self, *, field: str, source: str, known: list[str]) -> None:
        description = f"unknown source {source!r}; this program has {', '.join(known)}"
        super().__init__([Violation(field, description)], reason="UNKNOWN_SOURCE")
        self.source = source


class ProgramNotFound(DomainError):
    def __init__(self, program_id: str) -> None:
        super().__init__(f"no program {program_id!r}")
        self.program_id = program_id

    def metadata(self) -> dict[str, str]:
        return {"program_id": self.program_id}


class CurrencyMismatch(DomainError):
    def __init__(self, *, expected: str, got: str) -> None:
        super().__init__(f"the program prices in {expected}, the cart is in {got}")
        self.expected = expected
        self.got = got

    def metadata(self) -> dict[str, str]:
        return {"expected": self.expected, "got": self.got}


class PromoConflict(DomainError):
    """Points and a promo code cannot both apply under the EXCLUSIVE policy."""

    def __init__(self, promo_code: str) -> None:
        super().__init__(
            f"promo code {promo_code!r} excludes points under this program; "
            "drop the promo code to spend points"
        )
        self.promo_code = promo_code

    def metadata(self) -> dict[str, str]:
        return {"promo_code": self.promo_code}


class AllOrNothing(DomainError):
    """ALL_OR_NOTHING programs take exactly the maximum (DENCO rule 1.4)."""

    def __init__(self, *, requested: int, maximum: int) -> None:
        super().__init__(f"this program spends exactly {maximum} points or none; asked {requested}")
        self.requested = requested
        self.maximum = maximum

    def metadata(self) -> dict[str, str]:
        return {"requested": str(self.requested), "maximum": str(self.maximum)}


class ExceedsMaximum(DomainError):
    def __init__(self, *, requested: int, maximum: int) -> None:
        super().__init__(f"asked to spend {requested} points; this cart allows at most {maximum}")
        self.requested = requested
        self.maximum = maximum

    def metadata(self) -> dict[str, str]:
        return {"requested": str(self.requested), "maximum": str(self.maximum)}


class ExceedsRemaining(DomainError):
    def __init__(self, *, line_id: str, requested: int, remaining: int) -> None:
        super().__init__(f"line {line_id!r}: asked to return {requested} units, {remaining} remain")
        self.line_id = line_id
        self.requested = requested
        self.remaining = remaining

    def metadata(self) -> dict[str, str]:
        return {
            "line_id": self.line_id,
            "requested": str(self.requested),
            "remaining": str(self.remaining),
        }


class OrderNotFound(DomainError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"no redemption or accrual for order {order_id!r}")
        self.order_id = order_id

    def metadata(self) -> dict[str, str]:
        return {"order_id": self.order_id}


class OrderAlreadyRedeemed(DomainError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} already has a redemption")
        self.order_id = order_id

    def metadata(self) -> dict[str, str]:
        return {"order_id": self.order_id}


class OrderAlreadyAccrued(DomainError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} already has an accrual")
        self.order_id = order_id

    def metadata(self) -> dict[str, str]:
        return {"order_id": self.order_id}


class IdempotencyKeyReused(DomainError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"request_id {request_id!r} was already used for a different request")
        self.request_id = request_id

    def metadata(self) -> dict[str, str]:
        return {"request_id": self.request_id}


class HoldExpired(DomainError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"the hold on order {order_id!r} lapsed before capture")
        self.order_id = order_id

    def metadata(self) -> dict[str, str]:
        return {"order_id": self.order_id}


class HoldReleased(DomainError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"the hold on order {order_id!r} was released; it cannot be captured")
        self.order_id = order_id

    def metadata(self) -> dict[str, str]:
        return {"order_id": self.order_id}


class OrderCustomerMismatch(DomainError):
    """The order belongs to another customer (docs/rules.md §6: an order is one thing)."""

    def __init__(self, *, order_id: str, customer_id: str) -> None:
        super().__init__(f"order {order_id!r} belongs to another customer than {customer_id!r}")
        self.order_id = order_id
        self.customer_id = customer_id

    def metadata(self) -> dict[str, str]:
        return {"order_id": self.order_id, "customer_id": self.customer_id}


class AccrualMismatch(DomainError):
    """An accrual's lines are not the delivered part of the order's lines (docs/rules.md §6)."""

    def __init__(self, order_id: str, violations: list[Violation]) -> None:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(
            f"the accrual does not match order {order_id!r}: "
            f"{first.field}: {first.description}{more}"
        )
        self.order_id = order_id
        self.violations = violations

    def metadata(self) -> dict[str, str]:
        return {"order_id": self.order_id}


class InvalidTransition(DomainError):
    """A redemption asked to move to a state its state machine does not allow.

    Use cases check the state first (HOLD_EXPIRED, HOLD_RELEASED ...); this is the guard
    behind them, so it is a bug when a caller reaches it.
    """

    def __init__(self, *, source: str, target: str) -> None:
        super().__init__(f"a redemption cannot go from {source} to {target}")
        self.source = source
        self.target = target

    def metadata(self) -> dict[str, str]:
        return {"from": self.source, "to": self.target}
