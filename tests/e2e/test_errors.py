"""Every error reason of docs/rules.md §7 the implemented RPCs can produce, and their precedence.

Each error is checked for its status code, its google.rpc.ErrorInfo (domain "loyalty", reason,
metadata) and, for INVALID_ARGUMENT, the exact field paths of its google.rpc.BadRequest.
"""

import base64
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.v1 import account_service_pb2 as a
from loyalty.v1 import cart_pb2
from loyalty.v1 import redemption_service_pb2 as pb
from tests.e2e.builders import (
    GOODS,
    T0,
    TIMEOUT,
    account,
    apply_request,
    cart,
    grant,
    line,
    new_id,
    quote,
    reverse_request,
    rpc,
    ts,
)
from tests.e2e.rpc_errors import expect_error
from tests.support.server import Stubs

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXISTS = grpc.StatusCode.ALREADY_EXISTS
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
INT64_MAX = 2**63 - 1
LONG = "x" * 257  # one over the 256-character limit
OK_CART = cart(line("a", 1, 100_000))


def quote_of(the_cart: cart_pb2.Cart, **fields: Any) -> pb.QuoteRedemptionRequest:
    values = {"program_id": "stomatorg", "customer_id": "someone", **fields}
    return pb.QuoteRedemptionRequest(cart=the_cart, as_of=ts(T0), **values)


def apply_of(**fields: Any) -> pb.ApplyRedemptionRequest:
    request = apply_request("stomatorg", "someone", new_id("o"), OK_CART, 1)
    for name, value in fields.items():
        if name == "cart":
            request.cart.CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


def grant_of(**fields: Any) -> a.GrantPointsRequest:
    values = {
        "request_id": new_id("g"),
        "program_id": "stomatorg",
        "customer_id": "someone",
        "points": 10,
        "source": "promo",
        "as_of": ts(T0),
        **fields,
    }
    return a.GrantPointsRequest(**values)


def reverse_of(*lines: tuple[str, int], **fields: Any) -> pb.ReverseRedemptionRequest:
    request = reverse_request("stomatorg", "some-order", *lines)
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def account_at(as_of: Timestamp) -> a.GetAccountRequest:
    return a.GetAccountRequest(program_id="stomatorg", customer_id="c", as_of=as_of)


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


AFTER_9999 = Timestamp(seconds=253_402_300_800)  # 10000-01-01T00:00:00Z, not a Timestamp
LAST_SECOND = ts(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))  # 10000-01-01 in Moscow


def lines(count: int) -> cart_pb2.Cart:
    return cart(*(line(f"l{i}", 1, 100) for i in range(count)))


# (name of the RPC, request, the exact BadRequest field paths)
BAD_INPUT: dict[str, tuple[str, Any, list[str]]] = {
    "empty program_id": ("QuoteRedemption", quote_of(OK_CART, program_id=""), ["program_id"]),
    "empty customer_id": ("QuoteRedemption", quote_of(OK_CART, customer_id=""), ["customer_id"]),
    "empty ids of an apply": (
        "ApplyRedemption",
        apply_of(request_id="", program_id="", customer_id="", order_id=""),
        ["request_id", "program_id", "customer_id", "order_id"],
    ),
    "request_id of 129 characters": (
        "ApplyRedemption",
        apply_of(request_id="r" * 129),
        ["request_id"],
    ),
    "grant request_id of 129 characters": (
        "GrantPoints",
        grant_of(request_id="r" * 129),
        ["request_id"],
    ),
    "duplicate line_id": (
        "QuoteRedemption",
        quote_of(cart(line("a", 1, 100), line("b", 1, 100), line("a", 1, 100))),
        ["cart.lines[2].line_id"],
    ),
    "empty line_id": (
        "QuoteRedemption",
        quote_of(cart(line("", 1, 100))),
        ["cart.lines[0].line_id"],
    ),
    "quantity 0": (
        "QuoteRedemption",
        quote_of(cart(line("a", 0, 100))),
        ["cart.lines[0].quantity"],
    ),
    "negative quantity": (
        "ApplyRedemption",
        apply_of(cart=cart(line("a", -1, 100))),
        ["cart.lines[0].quantity"],
    ),
    "negative unit price": (
        "QuoteRedemption",
        quote_of(cart(line("a", 1, -1))),
        ["cart.lines[0].unit_price_minor"],
    ),
    "negative discount": (
        "QuoteRedemption",
        quote_of(cart(line("a", 1, 100, discount_minor=-1))),
        ["cart.lines[0].discount_minor"],
    ),
    "negative promo discount": (
        "QuoteRedemption",
        quote_of(cart(line("a", 1, 100, promo_discount_minor=-1))),
        ["cart.lines[0].promo_discount_minor"],
    ),
    "discounts above the line total": (
        # 2 × 1,000 = 2,000 minor; 1,500 + 600 = 2,100 off
        "QuoteRedemption",
        quote_of(
            cart(
                line("a", 2, 1_000, discount_minor=1_500, promo_discount_minor=600),
                promo_code="SPRING",
            )
        ),
        ["cart.lines[0].discount_minor"],
    ),
    "negative delivery": (
        "QuoteRedemption",
        quote_of(cart(line("a", 1, 100), delivery_minor=-1)),
        ["cart.delivery_minor"],
    ),
    "no lines": ("QuoteRedemption", quote_of(cart()), ["cart.lines"]),
    "1,001 lines": ("QuoteRedemption", quote_of(lines(1_001)), ["cart.lines"]),
    "empty currency": (
        "QuoteRedemption",
        quote_of(cart(line("a", 1, 100), currency="")),
        ["cart.currency"],
    ),
    "257-character customer_id": (
        "QuoteRedemption",
        quote_of(OK_CART, customer_id=LONG),
        ["customer_id"],
    ),
    "257-character order_id": ("ApplyRedemption", apply_of(order_id=LONG), ["order_id"]),
    "257-character strings in a line": (
        "QuoteRedemption",
        quote_of(cart(line(LONG, 1, 100, sku=LONG, category=LONG, brand=LONG, tags=["ok", LONG]))),
        [
            "cart.lines[0].line_id",
            "cart.lines[0].sku",
            "cart.lines[0].category",
            "cart.lines[0].brand",
            "cart.lines[0].tags[1]",
        ],
    ),
    "257-character promo code and payment method": (
        "QuoteRedemption",
        quote_of(cart(line("a", 1, 100), promo_code=LONG), payment_method=LONG),
        ["cart.promo_code", "payment_method"],
    ),
    "257-character reason": ("GrantPoints", grant_of(reason=LONG), ["reason"]),
    "quantity × price overflows int64": (
        # 2 × 2^62 = 2^63 > INT64_MAX
        "QuoteRedemption",
        quote_of(cart(line("a", 2, 2**62))),
        ["cart.lines[0].unit_price_minor"],
    ),
    "line totals overflow int64": (
        # 2^62 + 2^62 = 2^63
        "QuoteRedemption",
        quote_of(cart(line("a", 1, 2**62), line("b", 1, 2**62))),
        ["cart.lines"],
    ),
    "delivery at INT64_MAX": (
        "ApplyRedemption",
        apply_of(cart=cart(line("a", 1, 1), delivery_minor=INT64_MAX)),
        ["cart.delivery_minor"],
    ),
    "a total of 10^15 + 1": (
        # 10^15 line + 1 delivery (docs/rules.md §3: lines before discounts, plus delivery)
        "QuoteRedemption",
        quote_of(cart(line("a", 1, 10**15), delivery_minor=1)),
        ["cart.lines"],
    ),
    "a grant of 10^12 + 1 points": ("GrantPoints", grant_of(points=10**12 + 1), ["points"]),
    "unknown LineKind 7": (
        "QuoteRedemption",
        quote_of(cart(line("a", 1, 100, kind=GOODS), line("b", 1, 100, kind=7))),
        ["cart.lines[1].kind"],
    ),
    "apply of 0 points": ("ApplyRedemption", apply_of(points=0), ["points"]),
    "apply of negative points": ("ApplyRedemption", apply_of(points=-3), ["points"]),
    "negative hold_seconds": ("ApplyRedemption", apply_of(hold_seconds=-1), ["hold_seconds"]),
    "grant of 0 points": ("GrantPoints", grant_of(points=0), ["points"]),
    "grant of negative points": ("GrantPoints", grant_of(points=-5), ["points"]),
    "grant without source": ("GrantPoints", grant_of(source=""), ["source"]),
    "grant without customer": ("GrantPoints", grant_of(customer_id=""), ["customer_id"]),
    "grant expiring before it is available": (
        "GrantPoints",
        grant_of(available_at=ts(T0), expires_at=ts(T0)),
        ["expires_at"],
    ),
    "reverse without order_id and request_id": (
        "ReverseRedemption",
        reverse_of(order_id="", request_id=""),
        ["order_id", "request_id"],
    ),
    "reverse of 0 units": ("ReverseRedemption", reverse_of(("a", 0)), ["lines[0].quantity"]),
    "reverse of a line without id": (
        "ReverseRedemption",
        reverse_of(("a", 1), ("", 1)),
        ["lines[1].line_id"],
    ),
    "get redemption without order_id": (
        "GetRedemption",
        pb.GetRedemptionRequest(program_id="stomatorg"),
        ["order_id"],
    ),
    "get account without ids": ("GetAccount", a.GetAccountRequest(), ["program_id", "customer_id"]),
    "ledger with negative page_size": (
        "ListLedgerEntries",
        a.ListLedgerEntriesRequest(program_id="stomatorg", customer_id="c", page_size=-1),
        ["page_size"],
    ),
    "ledger with a forged page_token": (
        "ListLedgerEntries",
        a.ListLedgerEntriesRequest(program_id="stomatorg", customer_id="c", page_token="!!nope"),
        ["page_token"],
    ),
    # instants: invalid Timestamps, and ones whose arithmetic would leave datetime's range
    "as_of after 9999": ("GetAccount", account_at(AFTER_9999), ["as_of"]),
    "as_of before year 1": (
        "GetAccount",
        account_at(Timestamp(seconds=-62_135_596_801)),
        ["as_of"],
    ),
    "as_of with negative nanos": ("GetAccount", account_at(Timestamp(nanos=-5)), ["as_of"]),
    "as_of whose Moscow date is in year 10000": ("GetAccount", account_at(LAST_SECOND), ["as_of"]),
    "quote as_of after 9999": (
        "QuoteRedemption",
        pb.QuoteRedemptionRequest(
            program_id="stomatorg", customer_id="c", cart=OK_CART, as_of=AFTER_9999
        ),
        ["as_of"],
    ),
    "available_at after 9999": ("GrantPoints", grant_of(available_at=AFTER_9999), ["available_at"]),
    "expires_at after 9999": ("GrantPoints", grant_of(expires_at=AFTER_9999), ["expires_at"]),
    "default expiry after 9999": (
        # promo expires 90 days after available_at: 9999-12-01 + 90 days is past 9999-12-31
        "GrantPoints",
        grant_of(available_at=ts(datetime(9999, 12, 1, tzinfo=UTC))),
        ["available_at"],
    ),
    "page_token with an entry id beyond int64": (
        "ListLedgerEntries",
        a.ListLedgerEntriesRequest(
            program_id="stomatorg", customer_id="c", page_token=token("0:99999999999999999999")
        ),
        ["page_token"],
    ),
    # NUL characters (PostgreSQL text cannot hold them; refused on every backend)
    "NUL in customer_id": (
        "GetAccount",
        a.GetAccountRequest(program_id="stomatorg", customer_id="c\x00"),
        ["customer_id"],
    ),
    "NUL in order_id": (
        "GetRedemption",
        pb.GetRedemptionRequest(program_id="stomatorg", order_id="o\x00"),
        ["order_id"],
    ),
    "NUL in request_id and reason": (
        "GrantPoints",
        grant_of(request_id="r\x00", reason="\x00"),
        ["request_id", "reason"],
    ),
    "NUL in cart strings": (
        "ApplyRedemption",
        apply_of(
            cart=cart(
                line("a\x00", 1, 100, sku="\x00", category="\x00", brand="\x00", tags=["\x00"]),
                promo_code="\x00",
            )
        ),
        [
            "cart.promo_code",
            "cart.lines[0].line_id",
            "cart.lines[0].sku",
            "cart.lines[0].category",
            "cart.lines[0].brand",
            "cart.lines[0].tags[0]",
        ],
    ),
    "NUL in a returned line id": (
        "ReverseRedemption",
        reverse_of(("a\x00", 1)),
        ["lines[0].line_id"],
    ),
    "every offending field at once": (
        "QuoteRedemption",
        quote_of(cart(line("a", 0, 100), line("b", 1, -5)), customer_id=""),
        ["customer_id", "cart.lines[0].quantity", "cart.lines[1].unit_price_minor"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_invalid_request_names_each_offending_field(stubs: Stubs, case: str) -> None:
    name, request, fields = BAD_INPUT[case]
    expect_error(rpc(stubs, name), request, INVALID, "INVALID_REQUEST", fields=fields)


def test_limits_themselves_are_accepted(stubs: Stubs) -> None:
    customer = new_id("c").ljust(256, "c")
    grant_response = stubs.account.GrantPoints(
        grant_of(request_id=new_id("r").ljust(128, "r"), customer_id=customer, reason="x" * 256),
        timeout=TIMEOUT,
    )
    assert grant_response.points == 10
    # 1,000 lines of 1.00 RUB; a 256-character line id, sku and tag
    the_cart = lines(999)
    the_cart.lines.append(line("i" * 256, 1, 100, sku="s" * 256, tags=["t" * 256]))
    option = quote(stubs, "stomatorg", customer, the_cart).options[0]
    # base 100,000 minor → 3 % = 3,000 → 30 points > balance 10 → 10
    assert option.eligible_base_minor == 100_000
    assert option.max_points == 10


def test_a_grant_of_10_to_the_12_points_is_the_largest(stubs: Stubs) -> None:
    customer = new_id("c")
    answer = stubs.account.GrantPoints(
        grant_of(customer_id=customer, points=10**12), timeout=TIMEOUT
    )
    assert (answer.points, answer.balance_after) == (10**12, 10**12)
    assert account(stubs, "stomatorg", customer).spendable_points == 10**12


def test_too_large_a_single_grant_is_invalid(stubs: Stubs) -> None:
    expect_error(
        stubs.account.GrantPoints,
        grant_of(points=INT64_MAX),
        INVALID,
        "INVALID_REQUEST",
        fields=["points"],
    )


@pytest.mark.parametrize(("program_id", "source"), [("stomatorg", "cashback"), ("denco", "action")])
def test_unknown_source(stubs: Stubs, program_id: str, source: str) -> None:
    expect_error(
        stubs.account.GrantPoints,
        grant_of(program_id=program_id, source=source),
        INVALID,
        "UNKNOWN_SOURCE",
        fields=["source"],
    )


NO_PROGRAM: dict[str, Any] = {
    "QuoteRedemption": quote_of(OK_CART, program_id="nope"),
    "ApplyRedemption": apply_of(program_id="nope"),
    "ReverseRedemption": reverse_of(program_id="nope"),
    "GetRedemption": pb.GetRedemptionRequest(program_id="nope", order_id="o", as_of=ts(T0)),
    "GetAccount": a.GetAccountRequest(program_id="nope", customer_id="c", as_of=ts(T0)),
    "GrantPoints": grant_of(program_id="nope"),
    "ListLedgerEntries": a.ListLedgerEntriesRequest(
        program_id="nope", customer_id="c", as_of=ts(T0)
    ),
}


@pytest.mark.parametrize("name", list(NO_PROGRAM))
def test_program_not_found(stubs: Stubs, name: str) -> None:
    expect_error(
        rpc(stubs, name),
        NO_PROGRAM[name],
        NOT_FOUND,
        "PROGRAM_NOT_FOUND",
        metadata={"program_id": "nope"},
    )


def test_order_not_found(stubs: Stubs) -> None:
    order = new_id("o")
    expect_error(
        stubs.redemption.ReverseRedemption,
        reverse_request("stomatorg", order),
        NOT_FOUND,
        "ORDER_NOT_FOUND",
        metadata={"order_id": order},
    )
    expect_error(
        stubs.redemption.GetRedemption,
        pb.GetRedemptionRequest(program_id="stomatorg", order_id=order, as_of=ts(T0)),
        NOT_FOUND,
        "ORDER_NOT_FOUND",
        metadata={"order_id": order},
    )


def test_order_already_redeemed(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, "stomatorg", customer, 500, "action")
    the_cart = cart(line("a", 1, 1_000_000))  # 3 % → 300 points at most
    stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, order, the_cart, 100), timeout=TIMEOUT
    )
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("stomatorg", customer, order, the_cart, 100),
        EXISTS,
        "ORDER_ALREADY_REDEEMED",
        metadata={"order_id": order},
    )
    assert account(stubs, "stomatorg", customer).spendable_points == 400


def test_currency_mismatch(stubs: Stubs) -> None:
    euro = cart(line("a", 1, 100_000), currency="EUR")
    expect_error(
        stubs.redemption.QuoteRedemption,
        quote_of(euro),
        PRECONDITION,
        "CURRENCY_MISMATCH",
        metadata={"expected": "RUB", "got": "EUR"},
    )
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_of(cart=euro),
        PRECONDITION,
        "CURRENCY_MISMATCH",
        metadata={"expected": "RUB", "got": "EUR"},
    )


def test_promo_conflict_under_exclusive(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 500, "action")
    with_promo = cart(line("a", 1, 1_000_000, promo_discount_minor=10_000), promo_code="SPRING")
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("stomatorg", customer, new_id("o"), with_promo, 100),
        PRECONDITION,
        "PROMO_CONFLICT",
        metadata={"promo_code": "SPRING"},
    )
    assert account(stubs, "stomatorg", customer).spendable_points == 500


def test_all_or_nothing_and_exceeds_maximum(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "denco", customer, 1_000, "loyalty")
    grant(stubs, "stomatorg", customer, 1_000, "action")
    the_cart = cart(line("a", 1, 100_000))  # 1,000.00 RUB
    # denco: 50 % → 500 points, and exactly that
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("denco", customer, new_id("o"), the_cart, 499),
        PRECONDITION,
        "ALL_OR_NOTHING",
        metadata={"requested": "499", "maximum": "500"},
    )
    # stomatorg: 3 % → 30 points at most
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("stomatorg", customer, new_id("o"), the_cart, 31),
        PRECONDITION,
        "EXCEEDS_MAXIMUM",
        metadata={"requested": "31", "maximum": "30"},
    )
    assert account(stubs, "denco", customer).spendable_points == 1_000
    assert account(stubs, "stomatorg", customer).spendable_points == 1_000


def test_exceeds_remaining_and_unknown_returned_lines(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, "stomatorg", customer, 500, "action")
    the_cart = cart(line("m", 3, 100_000), line("n", 1, 100_000))  # 3 % of 400,000 → 120
    stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, order, the_cart, 12), timeout=TIMEOUT
    )
    expect_error(
        stubs.redemption.ReverseRedemption,
        reverse_request("stomatorg", order, ("m", 4)),
        PRECONDITION,
        "EXCEEDS_REMAINING",
        metadata={"line_id": "m", "requested": "4", "remaining": "3"},
    )
    stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", order, ("m", 2)), timeout=TIMEOUT
    )
    expect_error(
        stubs.redemption.ReverseRedemption,
        reverse_request("stomatorg", order, ("n", 1), ("m", 2)),
        PRECONDITION,
        "EXCEEDS_REMAINING",
        metadata={"line_id": "m", "requested": "2", "remaining": "1"},
    )
    expect_error(
        stubs.redemption.ReverseRedemption,
        reverse_request("stomatorg", order, ("zz", 1), ("n", 1), ("n", 1)),
        INVALID,
        "INVALID_REQUEST",
        fields=["lines[0].line_id", "lines[2].line_id"],
    )
    # the failed calls changed nothing: 12 points over m (9 = 3 × 3) and n (3); 2 of 3 units
    # of m returned → floor(9 × 2 / 3) = 6 back
    redemption = stubs.redemption.GetRedemption(
        pb.GetRedemptionRequest(program_id="stomatorg", order_id=order), timeout=TIMEOUT
    ).redemption
    assert [(x.line_id, x.points) for x in redemption.allocations] == [("m", 9), ("n", 3)]
    assert redemption.points_reversed == 6


# ---- precedence: bad input, unknown program, request_id reuse, CURRENCY_MISMATCH,
# ORDER_ALREADY_REDEEMED, PROMO_CONFLICT, ALL_OR_NOTHING, EXCEEDS_MAXIMUM ----------------------


def test_bad_input_beats_unknown_program(stubs: Stubs) -> None:
    expect_error(
        stubs.redemption.QuoteRedemption,
        quote_of(cart(line("a", 0, 100)), program_id="nope"),
        INVALID,
        "INVALID_REQUEST",
        fields=["cart.lines[0].quantity"],
    )
    expect_error(
        stubs.account.GrantPoints,
        grant_of(program_id="nope", points=0),
        INVALID,
        "INVALID_REQUEST",
        fields=["points"],
    )


def test_bad_input_beats_request_id_reuse(stubs: Stubs) -> None:
    request_id = new_id("r")
    stubs.account.GrantPoints(grant_of(request_id=request_id), timeout=TIMEOUT)
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_of(request_id=request_id, cart=cart(line("a", 0, 100))),
        INVALID,
        "INVALID_REQUEST",
        fields=["cart.lines[0].quantity"],
    )


def test_unknown_program_beats_currency_mismatch(stubs: Stubs) -> None:
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_of(program_id="nope", cart=cart(line("a", 1, 100), currency="EUR")),
        NOT_FOUND,
        "PROGRAM_NOT_FOUND",
    )


def test_request_id_reuse_beats_currency_mismatch(stubs: Stubs) -> None:
    request_id = new_id("r")
    stubs.account.GrantPoints(grant_of(request_id=request_id), timeout=TIMEOUT)
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_of(request_id=request_id, cart=cart(line("a", 1, 100), currency="EUR")),
        EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )


def test_order_errors_in_spec_order(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, "stomatorg", customer, 500, "action")
    the_cart = cart(line("a", 1, 1_000_000))  # at most 300
    stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, order, the_cart, 100), timeout=TIMEOUT
    )
    # currency mismatch beats ORDER_ALREADY_REDEEMED
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request(
            "stomatorg", customer, order, cart(line("a", 1, 1_000_000), currency="USD"), 100
        ),
        PRECONDITION,
        "CURRENCY_MISMATCH",
    )
    # ORDER_ALREADY_REDEEMED beats PROMO_CONFLICT and EXCEEDS_MAXIMUM
    with_promo = cart(line("a", 1, 1_000_000, promo_discount_minor=1), promo_code="P")
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("stomatorg", customer, order, with_promo, 100_000),
        EXISTS,
        "ORDER_ALREADY_REDEEMED",
    )


def test_promo_conflict_beats_exceeds_maximum(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 500, "action")
    with_promo = cart(line("a", 1, 1_000_000, promo_discount_minor=1), promo_code="P")
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("stomatorg", customer, new_id("o"), with_promo, 100_000),
        PRECONDITION,
        "PROMO_CONFLICT",
    )


def test_all_or_nothing_beats_exceeds_maximum(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "denco", customer, 1_000, "loyalty")
    # 50 % of 1,000.00 RUB → 500; asking 501 is both above and not the maximum
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("denco", customer, new_id("o"), cart(line("a", 1, 100_000)), 501),
        PRECONDITION,
        "ALL_OR_NOTHING",
        metadata={"requested": "501", "maximum": "500"},
    )
