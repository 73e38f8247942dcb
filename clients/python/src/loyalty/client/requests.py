"""Request messages from keyword arguments, shared by the sync and asyncio clients.

Every mutation gets a request_id here, before the first attempt: the caller's,
or a new uuid4. Retries resend the same message, so the server sees one key.
"""

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import cart_pb2, redemption_pb2
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from loyalty.v1 import reporting_service_pb2 as reporting_pb

ReturnedLines = Mapping[str, int] | Iterable[tuple[str, int]]


def new_request_id() -> str:
    return str(uuid.uuid4())


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp; the datetime must say its time zone."""
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no time zone")
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def parse_cart(source: str | bytes | Mapping[str, Any]) -> cart_pb2.Cart:
    """A Cart from its proto3 JSON mapping (text or an already-loaded dict).

    Field names in lowerCamelCase (`unitPriceMinor`) or as in the proto
    (`unit_price_minor`); int64 values as numbers or strings; `kind` as
    "LINE_KIND_GOODS" / "LINE_KIND_SERVICE". Unknown fields are an error.
    """
    data = json.loads(source) if isinstance(source, str | bytes) else source
    return json_format.ParseDict(dict(data), cart_pb2.Cart())


Request = TypeVar(
    "Request",
    redemption_pb.QuoteRedemptionRequest,
    redemption_pb.ApplyRedemptionRequest,
    redemption_pb.CaptureRedemptionRequest,
    redemption_pb.ReverseRedemptionRequest,
    redemption_pb.GetRedemptionRequest,
    account_pb.GetAccountRequest,
    account_pb.GrantPointsRequest,
    account_pb.AccrueOrderRequest,
    account_pb.ListLedgerEntriesRequest,
    reporting_pb.GetLiabilityRequest,
    reporting_pb.GetLiabilityRollForwardRequest,
)


def _as_of(request: Request, as_of: datetime | None) -> Request:
    """The request with `as_of` set when given (honoured only under clock override)."""
    if as_of is not None:
        request.as_of.CopyFrom(timestamp(as_of))
    return request


def quote_redemption(
    *,
    program_id: str,
    customer_id: str,
    cart: cart_pb2.Cart,
    payment_method: str = "",
    as_of: datetime | None = None,
) -> redemption_pb.QuoteRedemptionRequest:
    request = redemption_pb.QuoteRedemptionRequest(
        program_id=program_id, customer_id=customer_id, cart=cart, payment_method=payment_method
    )
    return _as_of(request, as_of)


def apply_redemption(
    *,
    program_id: str,
    customer_id: str,
    order_id: str,
    cart: cart_pb2.Cart,
    points: int,
    payment_method: str = "",
    hold_seconds: int = 0,
    request_id: str | None = None,
    as_of: datetime | None = None,
) -> redemption_pb.ApplyRedemptionRequest:
    request = redemption_pb.ApplyRedemptionRequest(
        request_id=request_id or new_request_id(),
        program_id=program_id,
        customer_id=customer_id,
        order_id=order_id,
        cart=cart,
        payment_method=payment_method,
        points=points,
        hold_seconds=hold_seconds,
    )
    return _as_of(request, as_of)


def capture_redemption(
    *,
    program_id: str,
    order_id: str,
    request_id: str | None = None,
    as_of: datetime | None = None,
) -> redemption_pb.CaptureRedemptionRequest:
    request = redemption_pb.CaptureRedemptionRequest(
        request_id=request_id or new_request_id(), program_id=program_id, order_id=order_id
    )
    return _as_of(request, as_of)


def reverse_redemption(
    *,
    program_id: str,
    order_id: str,
    lines: ReturnedLines = (),
    reason: str = "",
    request_id: str | None = None,
    as_of: datetime | None = None,
) -> redemption_pb.ReverseRedemptionRequest:
    """No lines: everything that remains (or, on a hold, release it)."""
    pairs = lines.items() if isinstance(lines, Mapping) else lines
    request = redemption_pb.ReverseRedemptionRequest(
        request_id=request_id or new_request_id(),
        program_id=program_id,
        order_id=order_id,
        lines=[redemption_pb2.ReturnedLine(line_id=i, quantity=q) for i, q in pairs],
        reason=reason,
    )
    return _as_of(request, as_of)


def get_redemption(
    *, program_id: str, order_id: str, as_of: datetime | None = None
) -> redemption_pb.GetRedemptionRequest:
    request = redemption_pb.GetRedemptionRequest(program_id=program_id, order_id=order_id)
    return _as_of(request, as_of)


def get_account(
    *, program_id: str, customer_id: str, as_of: datetime | None = None
) -> account_pb.GetAccountRequest:
    request = account_pb.GetAccountRequest(program_id=program_id, customer_id=customer_id)
    return _as_of(request, as_of)


def grant_points(
    *,
    program_id: str,
    customer_id: str,
    points: int,
    source: str,
    reason: str = "",
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    request_id: str | None = None,
    as_of: datetime | None = None,
) -> account_pb.GrantPointsRequest:
    request = account_pb.GrantPointsRequest(
        request_id=request_id or new_request_id(),
        program_id=program_id,
        customer_id=customer_id,
        points=points,
        source=source,
        reason=reason,
    )
    if available_at is not None:
        request.available_at.CopyFrom(timestamp(available_at))
    if expires_at is not None:
        request.expires_at.CopyFrom(timestamp(expires_at))
    return _as_of(request, as_of)


def accrue_order(
    *,
    program_id: str,
    customer_id: str,
    order_id: str,
    cart: cart_pb2.Cart,
    delivered_at: datetime,
    request_id: str | None = None,
    as_of: datetime | None = None,
) -> account_pb.AccrueOrderRequest:
    request = account_pb.AccrueOrderRequest(
        request_id=request_id or new_request_id(),
        program_id=program_id,
        customer_id=customer_id,
        order_id=order_id,
        cart=cart,
        delivered_at=timestamp(delivered_at),
    )
    return _as_of(request, as_of)


def list_ledger_entries(
    *,
    program_id: str,
    customer_id: str,
    page_size: int = 0,
    page_token: str = "",
    as_of: datetime | None = None,
) -> account_pb.ListLedgerEntriesRequest:
    request = account_pb.ListLedgerEntriesRequest(
        program_id=program_id, customer_id=customer_id, page_size=page_size, page_token=page_token
    )
    return _as_of(request, as_of)


def get_liability(
    *, program_id: str, as_of: datetime | None = None
) -> reporting_pb.GetLiabilityRequest:
    return _as_of(reporting_pb.GetLiabilityRequest(program_id=program_id), as_of)


def get_liability_roll_forward(
    *,
    program_id: str,
    start_time: datetime,
    end_time: datetime | None = None,
    as_of: datetime | None = None,
) -> reporting_pb.GetLiabilityRollForwardRequest:
    request = reporting_pb.GetLiabilityRollForwardRequest(program_id=program_id)
    request.start_time.CopyFrom(timestamp(start_time))
    if end_time is not None:
        request.end_time.CopyFrom(timestamp(end_time))
    return _as_of(request, as_of)
