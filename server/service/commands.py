"""What callers ask for, as domain values (built from protos by server/api/convert.py)."""

from dataclasses import dataclass
from datetime import datetime

from pricing.cart import Cart
from pricing.reversal import ReturnedLine


@dataclass(frozen=True)
class Idempotency:
    """A mutation's request id and the fingerprint of everything it asked (but `as_of`)."""

    request_id: str
    fingerprint: bytes


@dataclass(frozen=True)
class QuoteRedemption:
    program_id: str
    customer_id: str
    cart: Cart
    payment_method: str


@dataclass(frozen=True)
class ApplyRedemption:
    key: Idempotency
    program_id: str
    customer_id: str
    order_id: str
    cart: Cart
    payment_method: str
    points: int
    hold_seconds: int


@dataclass(frozen=True)
class ReverseRedemption:
    key: Idempotency
    program_id: str
    order_id: str
    lines: tuple[ReturnedLine, ...]
    reason: str


@dataclass(frozen=True)
class GrantPoints:
    key: Idempotency
    program_id: str
    customer_id: str
    points: int
    source: str
    available_at: datetime | None
    expires_at: datetime | None
    reason: str


@dataclass(frozen=True)
class LedgerPageRequest:
    program_id: str
    customer_id: str
    page_size: int
    page_token: str  # "" for a walk's first page


@dataclass(frozen=True)
class AccrueOrder:
    key: Idempotency
    program_id: str
    customer_id: str
    order_id: str
    cart: Cart
    delivered_at: datetime


@dataclass(frozen=True)
class CaptureRedemption:
    key: Idempotency
    program_id: str
    order_id: str
