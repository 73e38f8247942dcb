"""The order as one aggregate over a real server (docs/rules.md §3, §6, §7; issue 12).

Each test is one bullet of issue 12's list, on SQLite and PostgreSQL (the module's
`stubs` fixture runs once per backend). Every expected number is worked out by hand
in the comments from docs/rules.md and `programs/*.toml`, never by the code under test:

Stomatorg, base tier: an order may take 3 % of its eligible base (services and
`no_points` goods are not eligible) and earns 3 % of what was paid in money for its
goods (net minus the points spent on them); an accrual is pending 7 days after
delivery. Denco: 50 % cap, `ALL_OR_NOTHING`, `STACK`. 1 point = 100 minor everywhere.
`action` points never expire. Every rounding of points is a floor.
"""

import re
from datetime import datetime, timedelta

import grpc
import pytest

from loyalty.v1 import cart_pb2
from loyalty.v1 import redemption_pb2 as r
from loyalty.v1 import redemption_service_pb2 as rs
from tests.e2e.builders import (
    T0,
    TIMEOUT,
    account,
    accrue,
    accrue_request,
    allocations,
    apply_request,
    capture_request,
    cart,
    days,
    grant,
    hold_request,
    hours,
    ledger_rows,
    line,
    new_id,
    redemption_at,
    reverse_request,
    ts,
    when,
)
from tests.e2e.rpc_errors import expect_error, failure_of
from tests.support.server import Stubs

pytestmark = pytest.mark.timeout(120)

PROGRAM = "stomatorg"
MINUTE = timedelta(minutes=1)
INVALID, PRECONDITION, EXISTS = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
)

# x: 2 × 5,000.00 ₽ = 1,000,000 minor; y: 1 × 10,000.00 ₽ = 1,000,000 minor. Eligible
# base 2,000,000; cap 3 % = 60,000 minor = 600 points. Equal nets: an even number of
# points splits half and half.
EVEN = cart(line("x", 2, 500_000), line("y", 1, 1_000_000))
# a: 6,000 ₽, x: 4,000 ₽. Eligible base 1,000,000; cap 3 % = 30,000 minor = 300 points;
# 300 points split 300 × 6/10 = 180 and 300 × 4/10 = 120, exactly.
SIXTY_FORTY = cart(line("a", 1, 600_000), line("x", 1, 400_000))


# ---- helpers -----------------------------------------------------------------------


def spend(
    stubs: Stubs,
    customer: str,
    order: str,
    the_cart: cart_pb2.Cart,
    points: int,
    *,
    as_of: datetime = T0,
    program: str = PROGRAM,
) -> rs.ApplyRedemptionResponse:
    return stubs.redemption.ApplyRedemption(
        apply_request(program, customer, order, the_cart, points, as_of=as_of), timeout=TIMEOUT
    )


def hold(
    stubs: Stubs,
    customer: str,
    order: str,
    the_cart: cart_pb2.Cart,
    points: int,
    *,
    seconds: int,
    as_of: datetime = T0,
) -> rs.ApplyRedemptionResponse:
    return stubs.redemption.ApplyRedemption(
        hold_request(PROGRAM, customer, order, the_cart, points, hold_seconds=seconds, as_of=as_of),
        timeout=TIMEOUT,
    )


def reverse(
    stubs: Stubs, order: str, *returned: tuple[str, int], as_of: datetime
) -> rs.ReverseRedemptionResponse:
    return stubs.redemption.ReverseRedemption(
        reverse_request(PROGRAM, order, *returned, as_of=as_of), timeout=TIMEOUT
    )


def state(value: int) -> str:
    return r.RedemptionState.Name(value).removeprefix("REDEMPTION_STATE_")


def points_of(stubs: Stubs, customer: str, *, as_of: datetime) -> tuple[int, int, int, int]:
    """(spendable, pending, held, debt) as GetAccount sees them at `as_of`."""
    seen = account(stubs, PROGRAM, customer, as_of=as_of)
    return seen.spendable_points, seen.pending_points, seen.held_points, seen.debt_points


def entries(stubs: Stubs, customer: str, *, as_of: datetime) -> list[tuple[str, int, str]]:
    """(kind, points, order_id) of the customer's ledger up to `as_of`, oldest first."""
    return [(kind, points, order) for kind, points, _, order, _ in ledger_rows(
        stubs, PROGRAM, customer, as_of=as_of
    )]  # fmt: skip


def returned(response: rs.ReverseRedemptionResponse) -> tuple[int, int, int, int]:
    return (
        response.points_returned,
        response.points_clawed_back,
        response.debt_points,
        response.balance_after,
    )


LINE_FIELD = re.compile(r"^cart\.lines\[(\d+)\]")


def named_lines(fields: list[str]) -> set[int]:
    """The cart line indices a BadRequest names (each field must be under `cart.lines[i]`)."""
    found = [LINE_FIELD.match(f) for f in fields]
    assert fields and all(found), f"a BadRequest naming cart lines was expected: {fields}"
    return {int(m.group(1)) for m in found if m}


# ---- points lost across customers ----------------------------------------------------


def test_another_customer_can_neither_accrue_nor_spend_on_an_order(stubs: Stubs) -> None:
    alice, bob, order = new_id("alice"), new_id("bob"), new_id("o")
    grant(stubs, PROGRAM, alice, 500, "action")
    grant(stubs, PROGRAM, bob, 100, "action")
    # Alice spends 300 of her 500 on the order: x 150, y 150 (equal nets).
    applied = spend(stubs, alice, order, EVEN, 300)
    assert allocations(applied.redemption) == [("x", 150, 15_000), ("y", 150, 15_000)]
    assert applied.balance_after == 200

    # Bob names Alice's order: refused, whatever the call, before anything is written.
    at = hours(1)
    expect_error(
        stubs.account.AccrueOrder,
        accrue_request(PROGRAM, bob, order, EVEN, delivered_at=at, as_of=at),
        PRECONDITION,
        "ORDER_CUSTOMER_MISMATCH",
    )
    # ORDER_CUSTOMER_MISMATCH comes before ORDER_ALREADY_REDEEMED (docs/rules.md §7) ...
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request(PROGRAM, bob, order, EVEN, 50, as_of=at),
        PRECONDITION,
        "ORDER_CUSTOMER_MISMATCH",
    )
    expect_error(
        stubs.redemption.ApplyRedemption,
        hold_request(PROGRAM, bob, order, EVEN, 50, hold_seconds=600, as_of=at),
        PRECONDITION,
        "ORDER_CUSTOMER_MISMATCH",
    )
    # ... and after CURRENCY_MISMATCH.
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request(PROGRAM, bob, order, cart(line("x", 1, 100), currency="EUR"), 1, as_of=at),
        PRECONDITION,
        "CURRENCY_MISMATCH",
    )
    assert points_of(stubs, alice, as_of=at) == (200, 0, 0, 0)
    assert points_of(stubs, bob, as_of=at) == (100, 0, 0, 0)
    assert entries(stubs, bob, as_of=days(30)) == [("GRANT", 100, "")]

    # Alice's own accrual: (1,000,000 − 15,000) + (1,000,000 − 15,000) = 1,970,000 paid in
    # money × 3 % = 59,100 minor → 591 points, pending until delivery + 7 days.
    earned = accrue(stubs, PROGRAM, alice, order, EVEN, delivered_at=at, as_of=at)
    assert (earned.points, when(earned.available_at)) == (591, at + timedelta(days=7))
    # Once accrued, Bob is still another customer (not ORDER_ALREADY_ACCRUED).
    expect_error(
        stubs.account.AccrueOrder,
        accrue_request(PROGRAM, bob, order, EVEN, delivered_at=at, as_of=at),
        PRECONDITION,
        "ORDER_CUSTOMER_MISMATCH",
    )

    # The whole order back: Alice's 300 spent return to her, her 591 pending leave her own
    # bucket. Bob's account is never read, taken from or written to.
    back = reverse(stubs, order, as_of=hours(2))
    assert returned(back) == (300, 591, 0, 500)
    assert (state(back.redemption.state), back.redemption.points_reversed) == ("REVERSED", 300)
    assert points_of(stubs, alice, as_of=hours(2)) == (500, 0, 0, 0)
    assert points_of(stubs, bob, as_of=hours(2)) == (100, 0, 0, 0)
    matured = at + timedelta(days=7)
    assert points_of(stubs, alice, as_of=matured) == (500, 0, 0, 0)
    assert points_of(stubs, bob, as_of=matured) == (100, 0, 0, 0)
    # Alice: 500 − 300 + 300 + 591 − 591 = 500; Bob: his grant only.
    assert sorted(entries(stubs, alice, as_of=matured)) == sorted(
        [
            ("GRANT", 500, ""),
            ("REDEMPTION", -300, order),
            ("REVERSAL", 300, order),
            ("ACCRUAL", 591, order),
            ("CLAWBACK", -591, order),
        ]
    )
    assert entries(stubs, bob, as_of=matured) == [("GRANT", 100, "")]


def test_an_order_first_seen_by_its_accrual_belongs_to_that_customer(stubs: Stubs) -> None:
    alice, bob, order = new_id("alice"), new_id("bob"), new_id("o")
    grant(stubs, PROGRAM, bob, 400, "action")
    # Alice's order, accrued without a redemption: 2,000,000 × 3 % = 60,000 minor = 600
    # points, pending until T0 + 7 days.
    assert accrue(stubs, PROGRAM, alice, order, EVEN, delivered_at=T0, as_of=T0).points == 600
    # Bob may not spend on it (his 400 would fit the 600 cap).
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request(PROGRAM, bob, order, EVEN, 400, as_of=hours(1)),
        PRECONDITION,
        "ORDER_CUSTOMER_MISMATCH",
    )
    assert points_of(stubs, bob, as_of=hours(1)) == (400, 0, 0, 0)
    # Returning y (1 of 1 unit): y earned 600 × 1,000,000 / 2,000,000 = 300 of Alice's
    # pending points; nothing was spent, so nothing comes back; Bob is untouched.
    back = reverse(stubs, order, ("y", 1), as_of=hours(2))
    assert not back.HasField("redemption")
    assert returned(back)[:3] == (0, 300, 0)
    assert points_of(stubs, alice, as_of=hours(2)) == (0, 300, 0, 0)
    assert points_of(stubs, bob, as_of=hours(2)) == (400, 0, 0, 0)
    assert entries(stubs, bob, as_of=days(8)) == [("GRANT", 400, "")]


# ---- accruals checked against the order ----------------------------------------------


# a: 2 × 1,500 ₽ = 300,000; b: 2 × 1,000 ₽ − 200 ₽ = 180,000 (100 ₽ off per unit).
# Eligible base 480,000; cap 3 % = 14,400 minor = 144 points. 100 points: a 100 × 300/480
# = 62.5, b 37.5 → 62 + 37, the spare point to the tied remainders' earlier line: a 63, b 37.
RECORDED = cart(line("a", 2, 150_000), line("b", 2, 100_000, discount_minor=20_000))
MISMATCHED = {
    # ten times the prices (and so the discount, to stay a valid cart): both lines
    "ten times the prices": (
        cart(line("a", 2, 1_500_000), line("b", 2, 1_000_000, discount_minor=200_000)),
        {0, 1},
    ),
    # a line id the order does not have, for the units of a
    "another line id": (
        cart(line("a2", 2, 150_000), line("b", 2, 100_000, discount_minor=20_000)),
        {0},
    ),
    # more units of a than were bought
    "more units": (cart(line("a", 3, 150_000), line("b", 2, 100_000, discount_minor=20_000)), {0}),
    # b without its 100 ₽ per unit off
    "another per-unit discount": (cart(line("a", 2, 150_000), line("b", 2, 100_000)), {1}),
    # one unit of b with both units' discount: 200 ₽ off one unit, not 100 ₽
    "a discount not per unit": (cart(line("b", 1, 100_000, discount_minor=20_000)), {0}),
}


@pytest.mark.parametrize("case", sorted(MISMATCHED))
def test_an_accrual_that_is_not_the_order_is_refused(stubs: Stubs, case: str) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    applied = spend(stubs, customer, order, RECORDED, 100)
    assert [x for x in allocations(applied.redemption)] == [("a", 63, 6_300), ("b", 37, 3_700)]

    bad_cart, lines_named = MISMATCHED[case]
    failure = failure_of(
        stubs.account.AccrueOrder,
        accrue_request(PROGRAM, customer, order, bad_cart, delivered_at=T0, as_of=hours(1)),
    )
    assert (failure.code, failure.domain, failure.reason) == (
        PRECONDITION,
        "loyalty",
        "ACCRUAL_MISMATCH",
    ), failure
    assert named_lines(failure.fields) == lines_named, failure
    # Nothing was accrued: nothing pends now or at the would-be maturity.
    assert points_of(stubs, customer, as_of=hours(1)) == (400, 0, 0, 0)
    assert points_of(stubs, customer, as_of=days(8)) == (400, 0, 0, 0)

    # The order as recorded is accrued: a 300,000 − 6,300 = 293,700; b 180,000 − 3,700 =
    # 176,300; 470,000 × 3 % = 14,100 minor = 141 points.
    right = accrue(stubs, PROGRAM, customer, order, RECORDED, delivered_at=T0, as_of=hours(1))
    assert right.points == 141
    assert points_of(stubs, customer, as_of=hours(1)) == (400, 141, 0, 0)


def test_a_partly_delivered_order_earns_on_what_was_paid_for_the_delivered_units(
    stubs: Stubs,
) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    spend(stubs, customer, order, RECORDED, 100)  # a 63, b 37 (see RECORDED)
    # One unit of a and one of b delivered, each at its recorded price and per-unit
    # discount. The points spent on them count as a return of the other units would:
    # a: floor(63 × 1/2) = 31 would come back for one unit, so 63 − 31 = 32 stay on the
    # delivered unit; b: floor(37 × 1/2) = 18 back, 19 stay.
    # Base: a 150,000 − 3,200 = 146,800; b 100,000 − 10,000 − 1,900 = 88,100;
    # 234,900 × 3 % = 7,047 minor → 70 points.
    half = cart(line("a", 1, 150_000), line("b", 1, 100_000, discount_minor=10_000))
    earned = accrue(stubs, PROGRAM, customer, order, half, delivered_at=T0, as_of=hours(1))
    assert earned.points == 70
    assert points_of(stubs, customer, as_of=hours(1)) == (400, 70, 0, 0)


# ---- any line of the order may be returned ------------------------------------------


def test_a_line_cancelled_before_delivery_gives_its_points_back_after_the_accrual(
    stubs: Stubs,
) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    # a 6,000 ₽ and x 4,000 ₽ take points; n (tag no_points) 1,000 ₽ takes none.
    # Cap 3 % of 1,000,000 = 300: a 180, x 120, n 0.
    the_cart = cart(
        line("a", 1, 600_000), line("x", 1, 400_000), line("n", 1, 100_000, tags=["no_points"])
    )
    applied = spend(stubs, customer, order, the_cart, 300)
    assert [x for x in allocations(applied.redemption) if x[1]] == [
        ("a", 180, 18_000),
        ("x", 120, 12_000),
    ]
    # x is cancelled before delivery: the accrual covers a and n.
    # Base: a 600,000 − 18,000 = 582,000; n 100,000; 682,000 × 3 % = 20,460 minor → 204.
    # Split by base: a 204 × 582/682 = 174.09, n 29.91 → 174 + 29, the spare point to n's
    # larger remainder: a 174, n 30.
    delivered = hours(1)
    delivered_cart = cart(line("a", 1, 600_000), line("n", 1, 100_000, tags=["no_points"]))
    earned = accrue(
        stubs, PROGRAM, customer, order, delivered_cart, delivered_at=delivered, as_of=delivered
    )
    assert earned.points == 204
    assert points_of(stubs, customer, as_of=delivered) == (200, 204, 0, 0)

    # x took points and earned none: exactly its 120 come back.
    x_back = reverse(stubs, order, ("x", 1), as_of=hours(2))
    assert returned(x_back) == (120, 0, 0, 320)
    assert state(x_back.redemption.state) == "PARTIALLY_REVERSED"
    assert x_back.redemption.points_reversed == 120
    # n earned 30 and took none: 30 leave the pending accrual, nothing comes back.
    n_back = reverse(stubs, order, ("n", 1), as_of=hours(2))
    assert returned(n_back) == (0, 30, 0, 320)
    assert (state(n_back.redemption.state), n_back.redemption.points_reversed) == (
        "PARTIALLY_REVERSED",
        120,
    )
    # a did both: its 180 come back and its 174 are taken back.
    a_back = reverse(stubs, order, ("a", 1), as_of=hours(2))
    assert returned(a_back) == (180, 174, 0, 500)
    assert (state(a_back.redemption.state), a_back.redemption.points_reversed) == (
        "REVERSED",
        300,
    )
    assert points_of(stubs, customer, as_of=hours(2)) == (500, 0, 0, 0)
    expect_error(
        stubs.redemption.ReverseRedemption,
        reverse_request(PROGRAM, order, ("x", 1), as_of=hours(3)),
        PRECONDITION,
        "EXCEEDS_REMAINING",
    )
    expect_error(
        stubs.redemption.ReverseRedemption,
        reverse_request(PROGRAM, order, ("zz", 1), as_of=hours(3)),
        INVALID,
        "INVALID_REQUEST",
        fields=["lines[0].line_id"],
    )
    # At maturity: 500 − 300 + 120 + 180 + 204 − 30 − 174 = 500.
    matured = delivered + timedelta(days=7)
    assert points_of(stubs, customer, as_of=matured) == (500, 0, 0, 0)
    assert sorted(entries(stubs, customer, as_of=matured)) == sorted(
        [
            ("GRANT", 500, ""),
            ("REDEMPTION", -300, order),
            ("REVERSAL", 120, order),
            ("REVERSAL", 180, order),
            ("ACCRUAL", 204, order),
            ("CLAWBACK", -30, order),
            ("CLAWBACK", -174, order),
        ]
    )


# ---- accrual during a hold -------------------------------------------------------------


def test_points_held_and_not_yet_captured_count_as_spent_for_the_accrual(stubs: Stubs) -> None:
    customer, whole, part = new_id("c"), new_id("o-whole"), new_id("o-part")
    grant(stubs, PROGRAM, customer, 1_000, "action")
    # Two holds of 300 on SIXTY_FORTY (a 180, x 120 each), an hour long.
    for order in (whole, part):
        held = hold(stubs, customer, order, SIXTY_FORTY, 300, seconds=3_600)
        assert state(held.redemption.state) == "HELD"
        assert allocations(held.redemption) == [("a", 180, 18_000), ("x", 120, 12_000)]
    assert points_of(stubs, customer, as_of=T0) == (400, 0, 600, 0)

    # Delivered and accrued while still held. The whole order: 1,000,000 − 30,000 =
    # 970,000 × 3 % = 29,100 minor = 291 points (not 300, as if nothing had been spent).
    delivered, at = T0 + 5 * MINUTE, T0 + 10 * MINUTE
    earned = accrue(stubs, PROGRAM, customer, whole, SIXTY_FORTY, delivered_at=delivered, as_of=at)
    assert (earned.points, when(earned.available_at)) == (291, delivered + timedelta(days=7))
    # Only a delivered: 600,000 − 18,000 = 582,000 × 3 % = 17,460 minor → 174 points.
    only_a = cart(line("a", 1, 600_000))
    assert accrue(
        stubs, PROGRAM, customer, part, only_a, delivered_at=delivered, as_of=at
    ).points == 174  # fmt: skip
    assert points_of(stubs, customer, as_of=at) == (400, 291 + 174, 600, 0)

    # Captured later, the holds stay 300 each: nothing of the accruals changes.
    for order in (whole, part):
        captured = stubs.redemption.CaptureRedemption(
            capture_request(PROGRAM, order, as_of=T0 + 20 * MINUTE), timeout=TIMEOUT
        ).redemption
        assert (state(captured.state), captured.points) == ("APPLIED", 300)
    assert points_of(stubs, customer, as_of=T0 + 20 * MINUTE) == (400, 465, 0, 0)


# ---- a payment retry ---------------------------------------------------------------------


def test_after_a_released_hold_a_retry_spends_again_as_a_new_redemption(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    first_request = hold_request(PROGRAM, customer, order, EVEN, 300, hold_seconds=600)
    first = stubs.redemption.ApplyRedemption(first_request, timeout=TIMEOUT)
    assert (state(first.redemption.state), first.balance_after) == ("HELD", 200)
    # While the hold is live the order is redeemed.
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request(PROGRAM, customer, order, EVEN, 200, as_of=T0 + MINUTE),
        EXISTS,
        "ORDER_ALREADY_REDEEMED",
    )
    # The payment fails: the hold is released and its 300 come back.
    released = reverse(stubs, order, as_of=T0 + 5 * MINUTE)
    assert returned(released) == (300, 0, 0, 500)
    assert state(released.redemption.state) == "RELEASED"

    # The retry, under a new request_id, spends 200: x 100, y 100. 500 − 200 = 300 left.
    retry_at = T0 + 6 * MINUTE
    retry_request = apply_request(PROGRAM, customer, order, EVEN, 200, as_of=retry_at)
    retry = stubs.redemption.ApplyRedemption(retry_request, timeout=TIMEOUT)
    assert retry.redemption.redemption_id != first.redemption.redemption_id
    assert (state(retry.redemption.state), retry.redemption.points) == ("APPLIED", 200)
    assert allocations(retry.redemption) == [("x", 100, 10_000), ("y", 100, 10_000)]
    assert retry.balance_after == 300
    # GetRedemption answers the latest attempt.
    assert redemption_at(stubs, PROGRAM, order, as_of=retry_at) == retry.redemption
    # A live redemption again: one more attempt is refused.
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request(PROGRAM, customer, order, EVEN, 100, as_of=retry_at + MINUTE),
        EXISTS,
        "ORDER_ALREADY_REDEEMED",
    )
    # Replays return their first answers and change nothing.
    first_request.as_of.CopyFrom(ts(retry_at + MINUTE))
    assert stubs.redemption.ApplyRedemption(first_request, timeout=TIMEOUT) == first
    assert stubs.redemption.ApplyRedemption(retry_request, timeout=TIMEOUT) == retry
    assert points_of(stubs, customer, as_of=retry_at + MINUTE) == (300, 0, 0, 0)

    # The order earns on the live attempt only: 2,000,000 − 20,000 = 1,980,000 × 3 % =
    # 59,400 minor = 594 points (the released 300 were never spent).
    delivered = hours(1)
    earned = accrue(stubs, PROGRAM, customer, order, EVEN, delivered_at=delivered, as_of=delivered)
    assert earned.points == 594
    # Returned whole: the retry's 200 come back (not the released 300), the 594 leave.
    back = reverse(stubs, order, as_of=hours(2))
    assert returned(back) == (200, 594, 0, 500)
    assert back.redemption.redemption_id == retry.redemption.redemption_id
    assert (state(back.redemption.state), back.redemption.points_reversed) == ("REVERSED", 200)
    assert redemption_at(stubs, PROGRAM, order, as_of=hours(2)) == back.redemption
    # 500 − 300 + 300 − 200 + 200 = 500 (the accrual and its clawback pend until maturity).
    assert entries(stubs, customer, as_of=hours(2)) == [
        ("GRANT", 500, ""),
        ("HOLD", -300, order),
        ("RELEASE", 300, order),
        ("REDEMPTION", -200, order),
        ("REVERSAL", 200, order),
    ]
    assert points_of(stubs, customer, as_of=delivered + timedelta(days=7)) == (500, 0, 0, 0)


def test_after_a_lapsed_hold_a_retry_holds_again_as_a_new_redemption(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    first = hold(stubs, customer, order, EVEN, 300, seconds=600)  # lapses at T0 + 10 min
    deadline = T0 + 10 * MINUTE
    lapsed = redemption_at(stubs, PROGRAM, order, as_of=deadline)
    assert (lapsed.redemption_id, state(lapsed.state)) == (
        first.redemption.redemption_id,
        "EXPIRED",
    )

    # The retry at T0 + 20 min holds 250 (x 125, y 125); the lapsed 300 came back:
    # 500 − 250 = 250.
    retry_at = T0 + 20 * MINUTE
    retry = hold(stubs, customer, order, EVEN, 250, seconds=600, as_of=retry_at)
    assert retry.redemption.redemption_id != first.redemption.redemption_id
    assert (state(retry.redemption.state), retry.redemption.points) == ("HELD", 250)
    assert allocations(retry.redemption) == [("x", 125, 12_500), ("y", 125, 12_500)]
    assert retry.balance_after == 250
    assert redemption_at(stubs, PROGRAM, order, as_of=retry_at) == retry.redemption
    assert points_of(stubs, customer, as_of=retry_at) == (250, 0, 250, 0)
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request(PROGRAM, customer, order, EVEN, 100, as_of=retry_at + MINUTE),
        EXISTS,
        "ORDER_ALREADY_REDEEMED",
    )
    captured = stubs.redemption.CaptureRedemption(
        capture_request(PROGRAM, order, as_of=retry_at + 5 * MINUTE), timeout=TIMEOUT
    ).redemption
    assert (captured.redemption_id, state(captured.state)) == (
        retry.redemption.redemption_id,
        "APPLIED",
    )
    assert points_of(stubs, customer, as_of=retry_at + 5 * MINUTE) == (250, 0, 0, 0)
    # The lapse's RELEASE is effective at the deadline: 500 − 300 + 300 − 250 = 250.
    rows = ledger_rows(stubs, PROGRAM, customer, as_of=retry_at + 5 * MINUTE)
    assert [(kind, points, at) for kind, points, _, _, at in rows] == [
        ("GRANT", 500, T0),
        ("HOLD", -300, T0),
        ("RELEASE", 300, deadline),
        ("HOLD", -250, retry_at),
    ]
    # A whole return gives back the captured 250.
    back = reverse(stubs, order, as_of=hours(1))
    assert returned(back) == (250, 0, 0, 500)
    assert state(back.redemption.state) == "REVERSED"


# ---- EXCLUSIVE cannot be bypassed -------------------------------------------------------


@pytest.mark.parametrize("program", ["stomatorg", "denco"])
def test_a_promo_discount_without_its_promo_code_is_invalid(stubs: Stubs, program: str) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, program, customer, 500, "loyalty" if program == "denco" else "action")
    # Lines 0 and 2 carry a promo discount, the cart names no promo code.
    bypass = cart(
        line("a", 1, 1_000_000, promo_discount_minor=10_000),
        line("b", 1, 500_000),
        line("c", 2, 300_000, promo_discount_minor=1),
    )
    named = ["cart.lines[0].promo_discount_minor", "cart.lines[2].promo_discount_minor"]
    for method, request in (
        (
            stubs.redemption.QuoteRedemption,
            rs.QuoteRedemptionRequest(
                program_id=program, customer_id=customer, cart=bypass, as_of=ts(T0)
            ),
        ),
        (stubs.redemption.ApplyRedemption, apply_request(program, customer, order, bypass, 100)),
        (
            stubs.redemption.ApplyRedemption,
            hold_request(program, customer, order, bypass, 100, hold_seconds=60),
        ),
        (
            stubs.account.AccrueOrder,
            accrue_request(program, customer, order, bypass, delivered_at=T0),
        ),
    ):
        expect_error(method, request, INVALID, "INVALID_REQUEST", fields=named)
    seen = account(stubs, program, customer, as_of=days(30))
    assert (seen.spendable_points, seen.pending_points, seen.held_points) == (500, 0, 0)
    assert [row[0] for row in ledger_rows(stubs, program, customer, as_of=days(30))] == ["GRANT"]
    expect_error(
        stubs.redemption.GetRedemption,
        rs.GetRedemptionRequest(program_id=program, order_id=order, as_of=ts(T0)),
        grpc.StatusCode.NOT_FOUND,
        "ORDER_NOT_FOUND",
    )

    # With its code the same cart is priced by the program's policy.
    coded = cart(*bypass.lines, promo_code="SPRING")
    if program == "stomatorg":  # EXCLUSIVE: points or the promo
        expect_error(
            stubs.redemption.ApplyRedemption,
            apply_request(program, customer, order, coded, 100),
            PRECONDITION,
            "PROMO_CONFLICT",
        )
    else:
        # STACK: points on the prices after the promo. Nets 990,000 + 500,000 + 599,999 =
        # 2,089,999; 50 % = 1,044,999 minor → 10,449 points; the balance, 500, binds and
        # ALL_OR_NOTHING takes exactly it.
        applied = spend(stubs, customer, order, coded, 500, program=program)
        assert (applied.redemption.points, applied.balance_after) == (500, 0)
