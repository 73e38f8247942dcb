"""Requests for the e2e tests: fixed instants, fresh ids, carts, and a few common calls."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import cart_pb2, redemption_pb2
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from tests.support.server import Stubs

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # every call says `as_of`, so time is exact
GOODS = cart_pb2.LINE_KIND_GOODS
SERVICE = cart_pb2.LINE_KIND_SERVICE
TIMEOUT = 10


def rpc(stubs: Stubs, name: str) -> Callable[..., Any]:
    """The stub method called `name`, whichever service has it."""
    service = stubs.account if hasattr(stubs.account, name) else stubs.redemption
    return getattr(service, name)  # type: ignore[no-any-return]


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def when(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


def new_id(prefix: str) -> str:
    """Distinct per test: the server (and its database) is shared by a whole module."""
    return f"{prefix}-{uuid.uuid4().hex}"


def line(line_id: str, quantity: int, unit_price_minor: int, **fields: object) -> cart_pb2.CartLine:
    return cart_pb2.CartLine(
        line_id=line_id, quantity=quantity, unit_price_minor=unit_price_minor, **fields
    )


def cart(
    *lines: cart_pb2.CartLine, delivery_minor: int = 0, promo_code: str = "", currency: str = "RUB"
) -> cart_pb2.Cart:
    return cart_pb2.Cart(
        currency=currency, lines=lines, delivery_minor=delivery_minor, promo_code=promo_code
    )


def grant(
    stubs: Stubs,
    program_id: str,
    customer_id: str,
    points: int,
    source: str,
    *,
    as_of: datetime = T0,
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    reason: str = "e2e",
) -> account_pb.GrantPointsResponse:
    request = account_pb.GrantPointsRequest(
        request_id=new_id("grant"),
        program_id=program_id,
        customer_id=customer_id,
        points=points,
        source=source,
        reason=reason,
        as_of=ts(as_of),
    )
    if available_at is not None:
        request.available_at.CopyFrom(ts(available_at))
    if expires_at is not None:
        request.expires_at.CopyFrom(ts(expires_at))
    return stubs.account.GrantPoints(request, timeout=TIMEOUT)


def account(
    stubs: Stubs, program_id: str, customer_id: str, *, as_of: datetime = T0
) -> account_pb.GetAccountResponse:
    return stubs.account.GetAccount(
        account_pb.GetAccountRequest(
            program_id=program_id, customer_id=customer_id, as_of=ts(as_of)
        ),
        timeout=TIMEOUT,
    )


def quote(
    stubs: Stubs,
    program_id: str,
    customer_id: str,
    the_cart: cart_pb2.Cart,
    *,
    payment_method: str = "",
    as_of: datetime = T0,
) -> redemption_pb.QuoteRedemptionResponse:
    return stubs.redemption.QuoteRedemption(
        redemption_pb.QuoteRedemptionRequest(
            program_id=program_id,
            customer_id=customer_id,
            cart=the_cart,
            payment_method=payment_method,
            as_of=ts(as_of),
        ),
        timeout=TIMEOUT,
    )


def apply_request(
    program_id: str,
    customer_id: str,
    order_id: str,
    the_cart: cart_pb2.Cart,
    points: int,
    *,
    payment_method: str = "",
    as_of: datetime = T0,
    request_id: str | None = None,
) -> redemption_pb.ApplyRedemptionRequest:
    return redemption_pb.ApplyRedemptionRequest(
        request_id=request_id or new_id("apply"),
        program_id=program_id,
        customer_id=customer_id,
        order_id=order_id,
        cart=the_cart,
        payment_method=payment_method,
        points=points,
        as_of=ts(as_of),
    )


def reverse_request(
    program_id: str,
    order_id: str,
    *returned: tuple[str, int],
    as_of: datetime = T0,
    request_id: str | None = None,
    reason: str = "return",
) -> redemption_pb.ReverseRedemptionRequest:
    return redemption_pb.ReverseRedemptionRequest(
        request_id=request_id or new_id("reverse"),
        program_id=program_id,
        order_id=order_id,
        lines=[redemption_pb2.ReturnedLine(line_id=i, quantity=q) for i, q in returned],
        reason=reason,
        as_of=ts(as_of),
    )


def accrue_request(
    program_id: str,
    customer_id: str,
    order_id: str,
    the_cart: cart_pb2.Cart,
    *,
    delivered_at: datetime | None,
    as_of: datetime = T0,
    request_id: str | None = None,
) -> account_pb.AccrueOrderRequest:
    """AccrueOrder; `delivered_at=None` leaves the field unset."""
    request = account_pb.AccrueOrderRequest(
        request_id=request_id or new_id("accrue"),
        program_id=program_id,
        customer_id=customer_id,
        order_id=order_id,
        cart=the_cart,
        as_of=ts(as_of),
    )
    if delivered_at is not None:
        request.delivered_at.CopyFrom(ts(delivered_at))
    return request


def accrue(
    stubs: Stubs,
    program_id: str,
    customer_id: str,
    order_id: str,
    the_cart: cart_pb2.Cart,
    *,
    delivered_at: datetime,
    as_of: datetime,
) -> account_pb.AccrueOrderResponse:
    return stubs.account.AccrueOrder(
        accrue_request(
            program_id, customer_id, order_id, the_cart, delivered_at=delivered_at, as_of=as_of
        ),
        timeout=TIMEOUT,
    )


def ledger(
    stubs: Stubs,
    program_id: str,
    customer_id: str,
    *,
    as_of: datetime,
    page_size: int = 0,
    page_token: str = "",
) -> account_pb.ListLedgerEntriesResponse:
    return stubs.account.ListLedgerEntries(
        account_pb.ListLedgerEntriesRequest(
            program_id=program_id,
            customer_id=customer_id,
            page_size=page_size,
            page_token=page_token,
            as_of=ts(as_of),
        ),
        timeout=TIMEOUT,
    )


def quote_of_size(size: int) -> redemption_pb.QuoteRedemptionRequest:
    """A quote request of exactly `size` bytes, the bulk in its promo code."""
    request = redemption_pb.QuoteRedemptionRequest(
        program_id="stomatorg", customer_id="c", cart=cart_pb2.Cart(currency="RUB")
    )
    padding = size - request.ByteSize()
    for _ in range(8):  # length prefixes grow with the padding; a few rounds settle them
        request.cart.promo_code = "x" * padding
        padding += size - request.ByteSize()
    assert request.ByteSize() == size, f"no quote request of exactly {size} bytes"
    return request


def allocations(message: object) -> list[tuple[str, int, int]]:
    """(line_id, points, discount_minor) of a quote option's or a redemption's allocations."""
    return [(a.line_id, a.points, a.discount_minor) for a in message.allocations]  # type: ignore[attr-defined]


# ---- holds (two-phase redemption) --------------------------------------------------


def hold_request(
    program_id: str,
    customer_id: str,
    order_id: str,
    the_cart: cart_pb2.Cart,
    points: int,
    *,
    hold_seconds: int,
    as_of: datetime = T0,
    request_id: str | None = None,
) -> redemption_pb.ApplyRedemptionRequest:
    """ApplyRedemption that only holds the points for `hold_seconds`."""
    request = apply_request(
        program_id, customer_id, order_id, the_cart, points, as_of=as_of, request_id=request_id
    )
    request.hold_seconds = hold_seconds
    return request


def capture_request(
    program_id: str, order_id: str, *, as_of: datetime, request_id: str | None = None
) -> redemption_pb.CaptureRedemptionRequest:
    return redemption_pb.CaptureRedemptionRequest(
        request_id=request_id or new_id("capture"),
        program_id=program_id,
        order_id=order_id,
        as_of=ts(as_of),
    )


def redemption_at(
    stubs: Stubs, program_id: str, order_id: str, *, as_of: datetime
) -> redemption_pb2.Redemption:
    """GetRedemption as seen at `as_of` (a hold reads as EXPIRED from its deadline on)."""
    return stubs.redemption.GetRedemption(
        redemption_pb.GetRedemptionRequest(
            program_id=program_id, order_id=order_id, as_of=ts(as_of)
        ),
        timeout=TIMEOUT,
    ).redemption


def ledger_rows(
    stubs: Stubs, program_id: str, customer_id: str, *, as_of: datetime
) -> list[tuple[str, int, str, str, datetime]]:
    """Every ledger entry effective at or before `as_of`, oldest first, over all pages:
    (kind without its prefix, signed points, source, order_id, effective_at)."""
    found: list[tuple[str, int, str, str, datetime]] = []
    token = ""
    while True:
        page = ledger(stubs, program_id, customer_id, as_of=as_of, page_size=50, page_token=token)
        found += [
            (
                account_pb.LedgerEntryKind.Name(e.kind).removeprefix("LEDGER_ENTRY_KIND_"),
                e.points,
                e.source,
                e.order_id,
                when(e.effective_at),
            )
            for e in page.entries
        ]
        token = page.next_page_token
        if not token:
            return found
