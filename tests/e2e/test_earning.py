"""The earning side over a real server: AccrueOrder, maturity, tiers, clawback and debt.

Every expected number is worked out by hand in the comments (docs/rules.md §5–§7), never by the
code under test. Stomatorg: base/regular/partner/vip earn 3/5/7/10 % and cap redemption
at 3/5/10/15 % of the eligible base; accruals mature 7 days after delivery and expire
90 days after maturity; a tier counts orders that matured on day D (Moscow, UTC+3 all
year) on days D+1 … D+365. 1 point = 100 minor. Every rounding of points is a floor.

The expiry job is global to a database, so it runs only in test_expiry.py, which gives
each test a database of its own.
"""

from datetime import UTC, datetime, timedelta, timezone

import grpc

from loyalty.v1 import account_service_pb2 as a
from loyalty.v1 import cart_pb2
from loyalty.v1 import redemption_pb2 as r
from loyalty.v1 import redemption_service_pb2 as rs
from tests.e2e.builders import (
    GOODS,
    SERVICE,
    T0,
    TIMEOUT,
    account,
    accrue,
    accrue_request,
    allocations,
    apply_request,
    cart,
    days,
    grant,
    hours,
    line,
    new_id,
    quote,
    reverse_request,
    when,
)
from tests.e2e.builders import ledger as ledger_page
from tests.e2e.rpc_errors import expect_error
from tests.support.server import Stubs

MSK = timezone(timedelta(hours=3))
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
ACCRUAL, CLAWBACK, DEBT, GRANT, REDEMPTION, REVERSAL = (
    a.LEDGER_ENTRY_KIND_ACCRUAL,
    a.LEDGER_ENTRY_KIND_CLAWBACK,
    a.LEDGER_ENTRY_KIND_DEBT,
    a.LEDGER_ENTRY_KIND_GRANT,
    a.LEDGER_ENTRY_KIND_REDEMPTION,
    a.LEDGER_ENTRY_KIND_REVERSAL,
)
INVALID, NOT_FOUND, PRECONDITION, EXISTS = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def msk(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=MSK)  # type: ignore[misc]


Entry = tuple[int, int, str, str, datetime]  # kind, points, source, order_id, effective_at


def entries(stubs: Stubs, program_id: str, customer_id: str, *, as_of: datetime) -> list[Entry]:
    """Every ledger entry effective at or before `as_of`, oldest first, over all pages."""
    found, token = [], ""
    while True:
        page = ledger_page(
            stubs, program_id, customer_id, as_of=as_of, page_size=3, page_token=token
        )
        found += [
            (e.kind, e.points, e.source, e.order_id, when(e.effective_at)) for e in page.entries
        ]
        if not page.next_page_token:
            return found
        token = page.next_page_token


def reverse(
    stubs: Stubs, program_id: str, order_id: str, *returned: tuple[str, int], as_of: datetime
) -> rs.ReverseRedemptionResponse:
    return stubs.redemption.ReverseRedemption(
        reverse_request(program_id, order_id, *returned, as_of=as_of), timeout=TIMEOUT
    )


def spend(
    stubs: Stubs,
    customer_id: str,
    order_id: str,
    the_cart: cart_pb2.Cart,
    points: int,
    *,
    as_of: datetime,
) -> rs.ApplyRedemptionResponse:
    return stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer_id, order_id, the_cart, points, as_of=as_of),
        timeout=TIMEOUT,
    )


def balances(response: a.GetAccountResponse) -> tuple[int, int, int]:
    return response.spendable_points, response.pending_points, response.debt_points


def tier(response: a.GetAccountResponse) -> tuple[str, int, int, str, int, int]:
    nxt = response.next_tier
    return (
        response.tier_id,
        response.qualifying_spend_minor,
        response.qualifying_orders,
        nxt.tier_id,
        nxt.missing_spend_minor,
        nxt.missing_orders,
    )


# --- tiers ----------------------------------------------------------------------------------


def test_three_orders_make_a_customer_regular_the_day_after_maturity_in_moscow(
    stubs: Stubs,
) -> None:
    customer = new_id("tier")
    # 50,000 RUB = 5,000,000 minor: 1 × 3,000,000 + 4 × 500,000, all goods.
    # At base, 3 %: 5,000,000 × 300 / 10,000 = 150,000 minor = 1,500 points each.
    fifty_thousand = cart(line("a", 1, 3_000_000), line("b", 4, 500_000))
    deliveries = {
        "o1": utc(2026, 3, 1, 9),  # 12:00 MSK 1 March → matures 8 March 09:00 UTC
        "o2": utc(2026, 3, 2, 9),  # 12:00 MSK 2 March → matures 9 March 09:00 UTC
        # 01:00 MSK on 3 March (22:00 UTC the day before): the Moscow day is what counts.
        "o3": utc(2026, 3, 2, 22),  # → matures 9 March 22:00 UTC = 01:00 MSK 10 March
    }
    earned = {
        order: accrue(
            stubs, "stomatorg", customer, f"{customer}-{order}", fifty_thousand,
            delivered_at=delivered, as_of=delivered + HOUR,
        )
        for order, delivered in deliveries.items()
    }  # fmt: skip
    # + 7 days to maturity, + 90 more to expiry (8 March + 90 days = 6 June).
    assert [(e.points, when(e.available_at), when(e.expires_at)) for e in earned.values()] == [
        (1_500, utc(2026, 3, 8, 9), utc(2026, 6, 6, 9)),
        (1_500, utc(2026, 3, 9, 9), utc(2026, 6, 7, 9)),
        (1_500, utc(2026, 3, 9, 22), utc(2026, 6, 7, 22)),
    ]

    # Everything pending, nothing counts; regular needs 3 orders and 10,000,000 minor.
    start = account(stubs, "stomatorg", customer, as_of=utc(2026, 3, 3))
    assert balances(start) == (0, 4_500, 0)
    assert tier(start) == ("base", 0, 0, "regular", 10_000_000, 3)

    # o1 matures at its delivery instant + 7 days exactly.
    assert balances(account(stubs, "stomatorg", customer, as_of=utc(2026, 3, 8, 9) - SECOND)) == (
        0,
        4_500,
        0,
    )
    matured = account(stubs, "stomatorg", customer, as_of=utc(2026, 3, 8, 9))
    assert balances(matured) == (1_500, 3_000, 0)
    assert dict(matured.balances_by_source) == {"loyalty": 1_500}
    assert (when(matured.next_expiry.expires_at), matured.next_expiry.points) == (
        utc(2026, 6, 6, 9),
        1_500,
    )
    # o1 matured on 8 March (Moscow): it counts from 00:00 MSK on 9 March, not before.
    assert tier(account(stubs, "stomatorg", customer, as_of=msk(2026, 3, 8, 23, 59, 59))) == (
        "base", 0, 0, "regular", 10_000_000, 3,
    )  # fmt: skip
    assert tier(account(stubs, "stomatorg", customer, as_of=msk(2026, 3, 9))) == (
        "base", 5_000_000, 1, "regular", 5_000_000, 2,
    )  # fmt: skip

    # o3 is pending one second before 22:00 UTC on 9 March and spendable at it.
    before = utc(2026, 3, 9, 22) - SECOND
    assert balances(account(stubs, "stomatorg", customer, as_of=before)) == (3_000, 1_500, 0)
    assert [e[:2] + e[3:] for e in entries(stubs, "stomatorg", customer, as_of=before)] == [
        (ACCRUAL, 1_500, f"{customer}-o1", utc(2026, 3, 8, 9)),
        (ACCRUAL, 1_500, f"{customer}-o2", utc(2026, 3, 9, 9)),
    ]
    at = utc(2026, 3, 9, 22)
    assert balances(account(stubs, "stomatorg", customer, as_of=at)) == (4_500, 0, 0)
    assert entries(stubs, "stomatorg", customer, as_of=at)[-1] == (
        ACCRUAL, 1_500, "loyalty", f"{customer}-o3", at,
    )  # fmt: skip

    # 23:00 MSK on 10 March (o3's maturity day): o1 and o2 count, o3 not yet → still base.
    # Two orders of 5,000,000 = 10,000,000: the spend threshold is met (inclusive), one
    # order is missing.
    late = msk(2026, 3, 10, 23)
    assert tier(account(stubs, "stomatorg", customer, as_of=late)) == (
        "base", 10_000_000, 2, "regular", 0, 1,
    )  # fmt: skip
    assert account(stubs, "stomatorg", customer, as_of=msk(2026, 3, 10, 23, 59, 59)).tier_id == (
        "base"
    )
    # The quote's cap follows the tier at the call: 3 % of 1,000,000 = 30,000 minor = 300
    # points (the balance, 4,500, is larger), and the apply refuses a point more.
    ten_thousand = cart(line("q", 1, 1_000_000))
    base_quote = quote(stubs, "stomatorg", customer, ten_thousand, as_of=late)
    assert (base_quote.tier_id, base_quote.spendable_points) == ("base", 4_500)
    assert base_quote.options[0].max_points == 300
    assert base_quote.options[0].binding_constraint == r.BINDING_CONSTRAINT_TIER_CAP
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request("stomatorg", customer, new_id("o"), ten_thousand, 301, as_of=late),
        PRECONDITION,
        "EXCEEDS_MAXIMUM",
    )
    # AccrueOrder earns at the tier at the call: 1,234,567 × 3 % = 37,037.01 → 37,037 minor
    # → 370 points (370.37 floored).
    odd = cart(line("c", 1, 1_234_567))
    o4 = accrue(
        stubs, "stomatorg", customer, f"{customer}-o4", odd,
        delivered_at=msk(2026, 3, 10, 22), as_of=late,
    )  # fmt: skip
    assert o4.points == 370

    # 00:00 MSK on 11 March = 21:00 UTC on 10 March: all three count → regular.
    # Partner needs 10 orders and 50,000,000: 35,000,000 and 7 orders are missing.
    midnight = msk(2026, 3, 11)
    assert midnight == utc(2026, 3, 10, 21)
    assert tier(account(stubs, "stomatorg", customer, as_of=midnight)) == (
        "regular", 15_000_000, 3, "partner", 35_000_000, 7,
    )  # fmt: skip
    # Regular caps at 5 %: 1,000,000 × 5 % = 50,000 minor = 500 points.
    regular_quote = quote(stubs, "stomatorg", customer, ten_thousand, as_of=midnight)
    assert (regular_quote.tier_id, regular_quote.options[0].max_points) == ("regular", 500)
    # ... and earns 5 %: 1,234,567 × 5 % = 61,728.35 → 61,728 minor → 617 points.
    o5 = accrue(
        stubs, "stomatorg", customer, f"{customer}-o5", odd,
        delivered_at=msk(2026, 3, 10, 23), as_of=midnight,
    )  # fmt: skip
    assert o5.points == 617
    applied = spend(stubs, customer, new_id("o"), ten_thousand, 500, as_of=midnight)
    assert applied.redemption.points == 500
    # 4,500 matured − 500 spent (o4 and o5 pend until 17 March).
    assert applied.balance_after == 4_000

    # The window: o1 (matured 8 March 2026) counts through 8 March 2027 — 365 days on —
    # and stops at 00:00 MSK on 9 March 2027. o4 and o5 (matured 17 March 2026) count too:
    # 3 × 5,000,000 + 2 × 1,234,567 = 17,469,134 over 5 orders; without o1 12,469,134 over 4.
    last_day = account(stubs, "stomatorg", customer, as_of=msk(2027, 3, 8, 23, 59, 59))
    assert tier(last_day) == ("regular", 17_469_134, 5, "partner", 32_530_866, 5)
    gone = account(stubs, "stomatorg", customer, as_of=msk(2027, 3, 9))
    assert tier(gone) == ("regular", 12_469_134, 4, "partner", 37_530_866, 6)


def test_returns_take_spend_off_the_tier_and_a_fully_returned_order_stops_counting(
    stubs: Stubs,
) -> None:
    customer = new_id("tier-drop")
    # Three orders of 4 × 1,000,000 = 4,000,000 minor, delivered at T0 (12:00 MSK 1 March):
    # 1,200 points each (3 %), mature 8 March 09:00 UTC, count from 00:00 MSK 9 March.
    four = cart(line("g", 4, 1_000_000))
    orders = [f"{customer}-{n}" for n in range(3)]
    for order in orders:
        assert accrue(
            stubs, "stomatorg", customer, order, four, delivered_at=T0, as_of=T0
        ).points == (1_200)
    day = msk(2026, 3, 9, 12)
    counted = account(stubs, "stomatorg", customer, as_of=day)
    assert tier(counted) == ("regular", 12_000_000, 3, "partner", 38_000_000, 7)
    assert balances(counted) == (3_600, 0, 0)

    # Two of the four units back: the order counts floor(4,000,000 × 2/4) = 2,000,000 less,
    # and floor(1,200 × 2/4) = 600 points leave its (spendable) bucket.
    # 10,000,000 is exactly the threshold: still regular.
    two = reverse(stubs, "stomatorg", orders[0], ("g", 2), as_of=day)
    assert (two.points_returned, two.points_clawed_back, two.debt_points) == (0, 600, 0)
    assert not two.HasField("redemption")
    assert two.balance_after == 3_000
    assert tier(account(stubs, "stomatorg", customer, as_of=day)) == (
        "regular", 10_000_000, 3, "partner", 40_000_000, 7,
    )  # fmt: skip
    # One more: floor(4,000,000 × 3/4) = 3,000,000 returned in all → 9,000,000 < 10,000,000.
    # floor(1,200 × 3/4) = 900 taken in all → 300 this time.
    three = reverse(stubs, "stomatorg", orders[0], ("g", 1), as_of=day)
    assert (three.points_clawed_back, three.balance_after) == (300, 2_700)
    assert tier(account(stubs, "stomatorg", customer, as_of=day)) == (
        "base", 9_000_000, 3, "regular", 1_000_000, 0,
    )  # fmt: skip
    # The last unit: the order is fully returned and no longer counts at all.
    last = reverse(stubs, "stomatorg", orders[0], ("g", 1), as_of=day)
    assert (last.points_clawed_back, last.balance_after) == (300, 2_400)
    dropped = account(stubs, "stomatorg", customer, as_of=day)
    assert tier(dropped) == ("base", 8_000_000, 2, "regular", 2_000_000, 1)
    # ... and the quote caps at base again: 3 % of 1,000,000 = 300 points.
    capped = quote(stubs, "stomatorg", customer, cart(line("q", 1, 1_000_000)), as_of=day)
    assert (capped.tier_id, capped.options[0].max_points) == ("base", 300)


# --- what an order earns --------------------------------------------------------------------


def test_an_order_partly_paid_with_points_earns_only_on_the_money(stubs: Stubs) -> None:
    customer = new_id("paid")
    order = new_id("order")
    grant(stubs, "stomatorg", customer, 1_000, "loyalty", as_of=T0)
    the_cart = cart(
        line("a", 2, 150_000, kind=GOODS),  # net 300,000
        line("b", 1, 200_000, discount_minor=20_000),  # net 180,000
        line("s", 1, 50_000, kind=SERVICE),  # services neither take nor earn points
        delivery_minor=30_000,
    )
    # Eligible base 480,000; cap 3 % = 14,400 minor = 144 points. With all 144 spent
    # (a: 144 × 300/480 = 90, b: 54) the order would earn on 300,000 − 9,000 + 180,000 −
    # 5,400 = 465,600: 3 % = 13,968 minor → 139 points.
    offer = quote(stubs, "stomatorg", customer, the_cart, as_of=T0).options[0]
    assert (offer.max_points, offer.eligible_base_minor, offer.points_to_earn) == (
        144,
        480_000,
        139,
    )

    # Spend 100: a 100 × 300/480 = 62.5, b 37.5 → floors 62 + 37, the spare point goes to
    # the larger remainder, a tie broken by the earlier line: a 63, b 37.
    applied = spend(stubs, customer, order, the_cart, 100, as_of=T0)
    assert [x for x in allocations(applied.redemption) if x[1]] == [
        ("a", 63, 6_300),
        ("b", 37, 3_700),
    ]
    assert applied.balance_after == 900

    # The accrual, same cart: a 300,000 − 6,300 = 293,700; b 180,000 − 3,700 = 176,300;
    # s and delivery nothing. Base 470,000 × 3 % = 14,100 minor = 141 points.
    delivered = hours(1)
    earned = accrue(
        stubs, "stomatorg", customer, order, the_cart, delivered_at=delivered, as_of=hours(2)
    )
    maturity = delivered + timedelta(days=7)
    assert (earned.points, when(earned.available_at), when(earned.expires_at)) == (
        141,
        maturity,
        maturity + timedelta(days=90),
    )
    assert balances(account(stubs, "stomatorg", customer, as_of=hours(2))) == (900, 141, 0)

    # Split over lines by base: a 141 × 293,700 / 470,000 = 88.11, b 52.89 → 88 + 52,
    # the spare point to b's larger remainder: a 88, b 53, s 0. Returns show it.
    service = reverse(stubs, "stomatorg", order, ("s", 1), as_of=hours(3))
    assert (service.points_returned, service.points_clawed_back, service.debt_points) == (0, 0, 0)
    back_b = reverse(stubs, "stomatorg", order, ("b", 1), as_of=hours(3))
    # b's 37 spent points come back; its 53 earned points leave the pending bucket.
    assert (back_b.points_returned, back_b.points_clawed_back, back_b.debt_points) == (37, 53, 0)
    assert back_b.balance_after == 937
    assert balances(account(stubs, "stomatorg", customer, as_of=hours(3))) == (937, 88, 0)
    # One of a's two units: floor(63 × 1/2) = 31 back, floor(88 × 1/2) = 44 taken.
    half_a = reverse(stubs, "stomatorg", order, ("a", 1), as_of=hours(3))
    assert (half_a.points_returned, half_a.points_clawed_back, half_a.balance_after) == (
        31,
        44,
        968,
    )
    # The other: 63 − 31 = 32 back, 88 − 44 = 44 taken. Everything is back where it was.
    rest_a = reverse(stubs, "stomatorg", order, ("a", 1), as_of=hours(3))
    assert (rest_a.points_returned, rest_a.points_clawed_back, rest_a.balance_after) == (
        32,
        44,
        1_000,
    )
    assert rest_a.redemption.state == r.REDEMPTION_STATE_REVERSED
    assert rest_a.redemption.points_reversed == 100
    assert balances(account(stubs, "stomatorg", customer, as_of=hours(3))) == (1_000, 0, 0)

    # Ledger: the accrual and its clawbacks are effective at maturity, not before.
    now_rows = [e[:3] for e in entries(stubs, "stomatorg", customer, as_of=hours(3))]
    assert now_rows == [
        (GRANT, 1_000, "loyalty"),
        (REDEMPTION, -100, "loyalty"),
        (REVERSAL, 37, "loyalty"),
        (REVERSAL, 31, "loyalty"),
        (REVERSAL, 32, "loyalty"),
    ]
    later = entries(stubs, "stomatorg", customer, as_of=maturity)
    assert [e[:2] + e[3:] for e in later[5:]] == [
        (ACCRUAL, 141, order, maturity),
        (CLAWBACK, -53, order, maturity),
        (CLAWBACK, -44, order, maturity),
        (CLAWBACK, -44, order, maturity),
    ]
    assert sum(e[1] for e in later) == 1_000
    # A fully returned order never counts for tiers.
    gone = account(stubs, "stomatorg", customer, as_of=maturity + timedelta(days=2))
    assert (gone.qualifying_spend_minor, gone.qualifying_orders) == (0, 0)


def test_returned_lines_take_back_exactly_their_share(stubs: Stubs) -> None:
    customer = new_id("share")
    order = new_id("order")
    the_cart = cart(
        line("x", 3, 333_300),  # 999,900
        line("y", 1, 123_400),  # 123,400
        line("z", 7, 11_100),  # 77,700
    )
    # Base 1,201,000 × 3 % = 36,030 minor → 360 points. Split by base (largest remainder):
    #   x 360 × 999,900 / 1,201,000 = 299.720   y 360 × 123,400 / 1,201,000 = 36.989
    #   z 360 × 77,700 / 1,201,000 = 23.291     floors 358; the 2 spare points go to y
    #   (.989) and x (.720): x 300, y 37, z 23.
    earned = accrue(stubs, "stomatorg", customer, order, the_cart, delivered_at=T0, as_of=T0)
    assert earned.points == 360
    maturity = days(7)

    # Pending: 2 of z's 7 units → floor(23 × 2/7) = 6 leave the pending bucket.
    first = reverse(stubs, "stomatorg", order, ("z", 2), as_of=days(1))
    assert not first.HasField("redemption")  # the order only earned
    assert (first.points_returned, first.points_clawed_back, first.debt_points) == (0, 6, 0)
    assert balances(account(stubs, "stomatorg", customer, as_of=days(1))) == (0, 354, 0)
    assert entries(stubs, "stomatorg", customer, as_of=days(1)) == []
    assert balances(account(stubs, "stomatorg", customer, as_of=maturity)) == (354, 0, 0)
    # The pending clawback is effective at maturity, next to the accrual it reduces.
    assert [e[:2] + e[4:] for e in entries(stubs, "stomatorg", customer, as_of=maturity)] == [
        (ACCRUAL, 360, maturity),
        (CLAWBACK, -6, maturity),
    ]

    # Matured: 3 more of z → floor(23 × 5/7) = 16 in all, 10 now; the last 2 → 23 − 16 = 7.
    steps = [(("z", 3), 10, 344), (("z", 2), 7, 337), (("y", 1), 37, 300), (("x", 1), 100, 200)]
    # x: floor(300 × 1/3) = 100.
    for returned, clawed, balance in steps:
        done = reverse(stubs, "stomatorg", order, returned, as_of=days(8))
        assert (done.points_clawed_back, done.debt_points, done.balance_after) == (
            clawed,
            0,
            balance,
        ), returned
    expect_error(
        stubs.redemption.ReverseRedemption,
        reverse_request("stomatorg", order, ("z", 1), as_of=days(8)),
        PRECONDITION,
        "EXCEEDS_REMAINING",
    )
    # No lines: what remains, x's two units: 300 − 100 = 200.
    rest = reverse(stubs, "stomatorg", order, as_of=days(8))
    assert (rest.points_returned, rest.points_clawed_back, rest.balance_after) == (0, 200, 0)
    rows = entries(stubs, "stomatorg", customer, as_of=days(8))
    assert [e[1] for e in rows] == [360, -6, -10, -7, -37, -100, -200]
    assert {e[0] for e in rows[1:]} == {CLAWBACK}
    assert sum(e[1] for e in rows) == 0


def test_services_and_delivery_earn_nothing_and_excluded_goods_still_earn(stubs: Stubs) -> None:
    customer = new_id("kinds")
    order = new_id("order")
    the_cart = cart(
        line("g", 1, 100_000),
        line("np", 1, 50_000, tags=["no_points"]),  # excluded from spending only
        line("s", 1, 70_000, kind=SERVICE),
        delivery_minor=40_000,
    )
    # Earning base: g 100,000 + np 50,000 = 150,000 → 3 % = 4,500 minor = 45 points
    # (g 45 × 2/3 = 30, np 15). Spending: only g is eligible; with no balance the maximum
    # is 0 and the order would earn the full 45.
    offer = quote(stubs, "stomatorg", customer, the_cart, as_of=T0).options[0]
    assert {(x.line_id, x.rule_id) for x in offer.excluded_lines} == {
        ("np", "no_points"),
        ("s", "services"),
    }
    assert (offer.eligible_base_minor, offer.points_to_earn) == (100_000, 45)
    earned = accrue(stubs, "stomatorg", customer, order, the_cart, delivered_at=T0, as_of=T0)
    assert earned.points == 45
    service = reverse(stubs, "stomatorg", order, ("s", 1), as_of=hours(1))
    assert (service.points_clawed_back, service.debt_points) == (0, 0)
    excluded = reverse(stubs, "stomatorg", order, ("np", 1), as_of=hours(1))
    assert (excluded.points_clawed_back, excluded.debt_points) == (15, 0)
    assert balances(account(stubs, "stomatorg", customer, as_of=hours(1))) == (0, 30, 0)

    # Services and delivery alone earn nothing.
    nothing = cart(line("s", 2, 500_000, kind=SERVICE), delivery_minor=100_000)
    zero = accrue(stubs, "stomatorg", customer, new_id("order"), nothing, delivered_at=T0, as_of=T0)
    assert zero.points == 0


def test_denco_earns_nothing_and_matures_at_delivery(stubs: Stubs) -> None:
    customer = new_id("denco")
    order = new_id("order")
    the_cart = cart(line("a", 2, 400_000), line("b", 1, 90_000, brand="IQOS"))
    delivered = hours(-30)
    earned = accrue(stubs, "denco", customer, order, the_cart, delivered_at=delivered, as_of=T0)
    # earn 0 %; delay 0: available at delivery; loyalty expires 365 days later.
    assert (earned.points, when(earned.available_at), when(earned.expires_at)) == (
        0,
        delivered,
        delivered + timedelta(days=365),
    )
    response = account(stubs, "denco", customer, as_of=T0)
    assert balances(response) == (0, 0, 0)
    assert response.tier_id == "standard"
    assert sum(e[1] for e in entries(stubs, "denco", customer, as_of=T0)) == 0
    back = reverse(stubs, "denco", order, as_of=hours(1))
    assert not back.HasField("redemption")
    assert (back.points_returned, back.points_clawed_back, back.debt_points) == (0, 0, 0)


# --- idempotency and errors -----------------------------------------------------------------


def test_accrue_order_is_idempotent_and_once_per_order(stubs: Stubs) -> None:
    customer = new_id("idem")
    order = new_id("order")
    the_cart = cart(line("a", 1, 100_000))  # 3 % = 3,000 minor = 30 points
    request = accrue_request(
        "stomatorg", customer, order, the_cart, delivered_at=T0, as_of=hours(1)
    )
    first = stubs.account.AccrueOrder(request, timeout=TIMEOUT)
    assert (first.points, when(first.available_at)) == (30, days(7))
    # The same request_id again (as_of does not count) gives the first answer, once.
    again = stubs.account.AccrueOrder(
        accrue_request(
            "stomatorg", customer, order, the_cart, delivered_at=T0, as_of=hours(5),
            request_id=request.request_id,
        ),
        timeout=TIMEOUT,
    )  # fmt: skip
    assert again == first
    assert balances(account(stubs, "stomatorg", customer, as_of=hours(6))) == (0, 30, 0)
    # A new request_id for the same order: ORDER_ALREADY_ACCRUED.
    expect_error(
        stubs.account.AccrueOrder,
        accrue_request("stomatorg", customer, order, the_cart, delivered_at=T0, as_of=hours(6)),
        EXISTS,
        "ORDER_ALREADY_ACCRUED",
    )
    # The same request_id with another request: IDEMPOTENCY_KEY_REUSED.
    expect_error(
        stubs.account.AccrueOrder,
        accrue_request(
            "stomatorg", customer, order, cart(line("a", 1, 200_000)), delivered_at=T0,
            as_of=hours(6), request_id=request.request_id,
        ),
        EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )  # fmt: skip
    rows = entries(stubs, "stomatorg", customer, as_of=days(7))
    assert [e[:2] for e in rows] == [(ACCRUAL, 30)]
    assert balances(account(stubs, "stomatorg", customer, as_of=days(7))) == (30, 0, 0)


def test_accrue_order_rejects_bad_input(stubs: Stubs) -> None:
    customer = new_id("bad")
    the_cart = cart(line("a", 1, 100_000))
    expect_error(
        stubs.account.AccrueOrder,
        accrue_request("stomatorg", customer, new_id("o"), the_cart, delivered_at=None),
        INVALID,
        "INVALID_REQUEST",
        fields=["delivered_at"],
    )
    expect_error(
        stubs.account.AccrueOrder,
        accrue_request("nope", customer, new_id("o"), the_cart, delivered_at=T0),
        NOT_FOUND,
        "PROGRAM_NOT_FOUND",
    )
    expect_error(
        stubs.account.AccrueOrder,
        accrue_request(
            "stomatorg", customer, new_id("o"), cart(line("a", 1, 100), currency="EUR"),
            delivered_at=T0,
        ),
        PRECONDITION,
        "CURRENCY_MISMATCH",
    )  # fmt: skip
    # Nothing was written by any of them.
    assert balances(account(stubs, "stomatorg", customer, as_of=days(30))) == (0, 0, 0)


# --- clawback and debt ----------------------------------------------------------------------


def test_a_matured_spent_accrual_returned_leaves_a_debt_that_later_credits_pay(
    stubs: Stubs,
) -> None:
    customer = new_id("debt")
    o1, o2, o3, o4 = (f"{customer}-{n}" for n in ("o1", "o2", "o3", "o4"))
    # o1: 2 × 500,000 = 1,000,000 × 3 % = 300 points, matured at T0 + 7 days.
    first = accrue(
        stubs, "stomatorg", customer, o1, cart(line("m", 2, 500_000)), delivered_at=T0, as_of=T0
    )
    assert first.points == 300
    # Day 8: 40 promo (expires day 98) and 25 action (never) arrive; the customer spends
    # 300 (3 % of 1,000,000, the tier cap) on o2. First-expiring-first: o1's loyalty
    # bucket (expires day 97) pays all 300.
    grant(stubs, "stomatorg", customer, 40, "promo", as_of=days(8))
    grant(stubs, "stomatorg", customer, 25, "action", as_of=days(8))
    applied = spend(stubs, customer, o2, cart(line("n", 1, 1_000_000)), 300, as_of=days(8))
    assert applied.balance_after == 65
    assert dict(account(stubs, "stomatorg", customer, as_of=days(8)).balances_by_source) == {
        "promo": 40,
        "action": 25,
    }

    # Day 9: o1 comes back whole. Its 300 points: its own bucket has 0, then the other
    # spendable buckets first-expiring-first (promo 40, action 25) → 65 taken, 235 owed.
    back = reverse(stubs, "stomatorg", o1, as_of=days(9))
    assert not back.HasField("redemption")
    assert (back.points_returned, back.points_clawed_back, back.debt_points) == (0, 65, 235)
    assert back.balance_after == 0
    owing = account(stubs, "stomatorg", customer, as_of=days(9))
    assert balances(owing) == (0, 0, 235)
    assert dict(owing.balances_by_source) == {}
    rows = entries(stubs, "stomatorg", customer, as_of=days(9))
    assert [e[:4] for e in rows] == [
        (ACCRUAL, 300, "loyalty", o1),
        (GRANT, 40, "promo", ""),
        (GRANT, 25, "action", ""),
        (REDEMPTION, -300, "loyalty", o2),
        (CLAWBACK, -40, "promo", o1),
        (CLAWBACK, -25, "action", o1),
        (DEBT, -235, "", o1),
    ]
    # The ledger sums to spendable − debt: 300 + 40 + 25 − 300 − 40 − 25 − 235 = −235.
    assert sum(e[1] for e in rows) == 0 - 235

    # Day 10: a grant of 100 pays debt first: 235 − 100 = 135 still owed, nothing to spend.
    paid = grant(stubs, "stomatorg", customer, 100, "action", as_of=days(10))
    assert (paid.points, paid.balance_after, paid.debt_points) == (100, 0, 135)
    # o3 (1 × 300,000, 3 % → 90 points) pends until day 17; o1 no longer counts, so base.
    third = accrue(
        stubs, "stomatorg", customer, o3, cart(line("p", 1, 300_000)), delivered_at=days(10),
        as_of=days(10),
    )  # fmt: skip
    assert (third.points, when(third.available_at)) == (90, days(17))
    assert balances(account(stubs, "stomatorg", customer, as_of=days(17) - SECOND)) == (0, 90, 135)
    # At maturity its 90 points pay debt first: 135 − 90 = 45 owed, nothing spendable.
    assert balances(account(stubs, "stomatorg", customer, as_of=days(17))) == (0, 0, 45)
    # o4, delivered on day 9, is already mature when accrued: its 1 × 100,000 → 30 points
    # pay the debt at once: 45 − 30 = 15.
    fourth = accrue(
        stubs, "stomatorg", customer, o4, cart(line("t", 1, 100_000)), delivered_at=days(9),
        as_of=days(17) + HOUR,
    )  # fmt: skip
    assert (fourth.points, when(fourth.available_at)) == (30, days(16))
    assert balances(account(stubs, "stomatorg", customer, as_of=days(17) + HOUR)) == (
        0,
        0,
        15,
    )
    # Day 18: 60 promo pay the last 15; 45 are left to spend.
    last = grant(stubs, "stomatorg", customer, 60, "promo", as_of=days(18))
    assert (last.points, last.balance_after, last.debt_points) == (60, 45, 0)
    settled = account(stubs, "stomatorg", customer, as_of=days(18))
    assert balances(settled) == (45, 0, 0)
    assert dict(settled.balances_by_source) == {"promo": 45}
    rows = entries(stubs, "stomatorg", customer, as_of=days(18))
    assert [e[:2] + e[3:] for e in rows[7:]] == [
        (GRANT, 100, "", days(10)),
        (ACCRUAL, 30, o4, days(16)),
        (ACCRUAL, 90, o3, days(17)),
        (GRANT, 60, "", days(18)),
    ]
    # −235 + 100 + 30 + 90 + 60 = 45 = spendable 45 − debt 0.
    assert sum(e[1] for e in rows) == 45


def test_returned_points_of_a_redemption_pay_debt_first(stubs: Stubs) -> None:
    customer = new_id("debt-back")
    o1, o2 = f"{customer}-o1", f"{customer}-o2"
    # o1 earns 300 (1,000,000 × 3 %), matures on day 7; on day 8 all of it pays o2.
    accrue(
        stubs, "stomatorg", customer, o1, cart(line("m", 1, 1_000_000)), delivered_at=T0, as_of=T0
    )
    spend(stubs, customer, o2, cart(line("n", 1, 1_000_000)), 300, as_of=days(8))
    # o1 returned: 300 owed. Then o2 returned: its 300 points come back and pay the debt.
    assert reverse(stubs, "stomatorg", o1, as_of=days(9)).debt_points == 300
    back = reverse(stubs, "stomatorg", o2, as_of=days(9))
    assert (back.points_returned, back.points_clawed_back, back.debt_points) == (300, 0, 0)
    assert back.balance_after == 0
    assert balances(account(stubs, "stomatorg", customer, as_of=days(9))) == (0, 0, 0)
    # 300 − 300 − 300 + 300 = 0.
    assert sum(e[1] for e in entries(stubs, "stomatorg", customer, as_of=days(9))) == 0


def test_points_returned_into_an_expired_bucket_stay_expired_and_pay_no_debt(
    stubs: Stubs,
) -> None:
    customer = new_id("debt-expired")
    o1, o2, o3 = (f"{customer}-{n}" for n in ("o1", "o2", "o3"))
    # T0: 100 promo expiring on day 20; o1 earns 300 (1,000,000 × 3 %), mature on day 7
    # (its loyalty bucket expires on day 97).
    grant(stubs, "stomatorg", customer, 100, "promo", as_of=T0, expires_at=days(20))
    accrue(
        stubs, "stomatorg", customer, o1, cart(line("m", 1, 1_000_000)), delivered_at=T0, as_of=T0
    )
    # Day 8: the cap on 20,000,000 is 6,000, far above the 400 held. First-expiring-first,
    # o2's 100 points are the promo ones, o3's 300 the loyalty ones.
    big = cart(line("n", 1, 20_000_000))
    assert spend(stubs, customer, o2, big, 100, as_of=days(8)).balance_after == 300
    assert spend(stubs, customer, o3, big, 300, as_of=days(8)).balance_after == 0
    # Day 9: o1 returned, nothing left to take: 300 owed.
    assert reverse(stubs, "stomatorg", o1, as_of=days(9)).debt_points == 300
    # Day 25: o2 returned. Its 100 points go back to the promo bucket, which expired on
    # day 20: they stay expired, so they are worth nothing and pay no debt.
    expired = reverse(stubs, "stomatorg", o2, as_of=days(25))
    assert (expired.points_returned, expired.points_clawed_back, expired.debt_points) == (100, 0, 0)
    assert expired.balance_after == 0
    assert balances(account(stubs, "stomatorg", customer, as_of=days(25))) == (0, 0, 300)
    assert [e[:3] for e in entries(stubs, "stomatorg", customer, as_of=days(25))[-2:]] == [
        (REVERSAL, 100, "promo"),
        (a.LEDGER_ENTRY_KIND_EXPIRY, -100, "promo"),
    ]
    # o3 returned: its 300 go back to the live loyalty bucket and pay the debt first.
    live = reverse(stubs, "stomatorg", o3, as_of=days(26))
    assert (live.points_returned, live.balance_after) == (300, 0)
    assert balances(account(stubs, "stomatorg", customer, as_of=days(26))) == (0, 0, 0)
    # 100 + 300 − 100 − 300 − 300 + 100 − 100 + 300 = 0.
    assert sum(e[1] for e in entries(stubs, "stomatorg", customer, as_of=days(26))) == 0
