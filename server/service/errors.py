"""Errors of the service layer that are not the pricing domain's.

The storage's own (unavailable, conflicts, a deadline passed while waiting) are named
here too, so the API layer maps them without importing the store.
"""

from dataclasses import dataclass

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
    "IdempotencyKeyReused",
    "call_deadline",
]


class ClockOverrideDisabled(DomainError):
    """`as_of` was sent to a server that does not allow overriding its clock."""

    def __init__(self) -> None:
        super().__init__("as_of is honoured only when the server runs with --allow-clock-override")


@dataclass(eq=False)
class IdempotencyKeyReused(DomainError):
    """The request id was already used, in this program, for a different request (rules.md §7)."""

    request_id: str

    def __post_init__(self) -> None:
        super().__init__(f"request_id {self.request_id!r} was already used for a different request")
