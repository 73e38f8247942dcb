"""Errors of the service layer that are not the pricing domain's.

The storage's own (unavailable, conflicts, a deadline passed while waiting) are named
here too, so the API layer maps them without importing the store.
"""

from pricing.errors import DomainError
from server.store.db import (
    CallDeadlineExceeded,
    ConcurrentUpdate,
    DatabaseUnavailable,
    call_deadline,
)

__all__ = [
    "CallDeadlineExceeded",
    "ClockOverrideDisabled",
    "ConcurrentUpdate",
    "DatabaseUnavailable",
    "MalformedRequest",
    "RoleNotAllowed",
    "TokenInvalid",
    "TokenMissing",
    "call_deadline",
]


class ClockOverrideDisabled(DomainError):
    """`as_of` was sent to a server that does not allow overriding its clock."""

    def __init__(self) -> None:
        super().__init__("as_of is honoured only when the server runs with --allow-clock-override")


class TokenMissing(DomainError):
    """A protected RPC was called without `authorization: Bearer <token>`."""

    def __init__(self) -> None:
        super().__init__("this call needs 'authorization: Bearer <token>'")


class TokenInvalid(DomainError):
    """The bearer token is not one the server knows (or the header is malformed)."""

    def __init__(self) -> None:
        super().__init__("the bearer token is not valid for this server")


class RoleNotAllowed(DomainError):
    """The caller's role may not call this RPC."""

    def __init__(self, *, role: str, method: str) -> None:
        super().__init__(f"role {role!r} may not call {method}")
        self.role = role
        self.method = method

    def metadata(self) -> dict[str, str]:
        return {"role": self.role, "method": self.method}


class MalformedRequest(DomainError):
    """The request body does not decode as the method's message (bad wire format, bad UTF-8)."""

    def __init__(self, message_type: str) -> None:
        super().__init__(
            f"the request is not a valid {message_type}: its wire format is corrupt "
            "or a string field is not UTF-8"
        )
        self.message_type = message_type

    def metadata(self) -> dict[str, str]:
        return {"message_type": self.message_type}
