"""Issue 13 over a real server, on both backends: each bullet of the issue with its numbers.

Nothing stored can break a later call (docs/rules.md §3 bounds, §5 grants, §7 paging and reads).
"""

from datetime import UTC, datetime, timedelta

import grpc

from loyalty.v1 import account_service_pb2 as a
from loyalty.v1 import redemption_pb2
from loyalty.v1 import redemption_service_pb2 as r
from tests.e2e.builders import (
    T0,
    TIMEOUT,
    account,
    accrue,
    accrue_request,
    apply_request,
    cart,
    grant,
    hold_request,
    ledger,
    line,
    new_id,
    quote,
    reverse_request,
    ts,
    when,
)
from tests.e2e.rpc_errors import expect_error
from tests.support.server import Stubs, run_expiry_job

INVALID = grpc.StatusCode.INVALID_ARGUMENT
INT64_MAX = 2**63 - 1
DAY = timedelta(days=1)
# The latest instant a caller may send: 9000-01-01 is the first one refused (docs/rules.md §3).
LAST_SECOND = datetime(8999, 12, 31, 23, 59, 59, tzinfo=UTC)


# ---- "AccrueOrder with delivered_at in the year 9999 answers INTERNAL" --------------------


def test_delivery_in_9999_is_bad_input_and_the_last_accepted_day_computes(stubs: Stubs) -> None:
    customer = new_id("c")
    far = accrue_request(
        "stomatorg", customer, new_id("o"), cart(line("a", 1, 100_000)),
        delivered_at=datetime(9999, 6, 1, tzinfo=UTC),
    )  # fmt: skip
    expect_error(
        stubs.account.AccrueOrder, far, INVALID, "INVALID_REQUEST", fields=["delivered_at"]
    )
    # 8999-12-31T23:59:59 + 7 days = 9000-01-07T23:59:59 (matures), + 90 days (Jan 24 left
    # + Feb 28 + Mar 31 = 83, + 7 of April; 9000 is no leap year) = 9000-04-07T23:59:59.
    # 1 × 100,000 × 3 % = 3,000 minor = 30 points.
    answer = accrue(
        stubs, "stomatorg", customer, new_id("o"), cart(line("a", 1, 100_000)),
        delivered_at=LAST_SECOND, as_of=T0,
    )  # fmt: skip
    assert answer.points == 30
    assert when(answer.available_at) == datetime(9000, 1, 7, 23, 59, 59, tzinfo=UTC)
    assert when(answer.expires_at) == datetime(9000, 4, 7, 23, 59, 59, tzinfo=UTC)
    for as_of in (T0, LAST_SECOND):
        seen = account(stubs, "stomatorg", customer, as_of=as_of)
        assert (seen.spendable_points, seen.pending_points) == (0, 30)
        assert ledger(stubs, "stomatorg", customer, as_of=as_of).entries == []


# ---- "two accruals each with a line priced at INT64_MAX ... GetAccount INTERNAL for good" --


def test_a_line_at_int64_max_is_refused_and_the_largest_carts_keep_the_account_readable(
    stubs: Stubs,
) -> None:
    customer = new_id("c")
    huge = accrue_request(
        "stomatorg", customer, new_id("o"), cart(line("a", 1, INT64_MAX)), delivered_at=T0
    )
    expect_error(stubs.account.AccrueOrder, huge, INVALID, "INVALID_REQUEST", fields=["cart.lines"])
    # Two orders at the bound, 10^15 minor each, delivered 30 days before T0: both mature at
    # T0 − 23 days at the base rate (the first counts for 1 order, regular needs 3):
    # 10^15 × 3 % = 3 × 10^13 minor = 3 × 10^11 points each.
    for _ in range(2):
        answer = accrue(
            stubs, "stomatorg", customer, new_id("o"), cart(line("a", 1_000, 10**12)),
            delivered_at=T0 - 30 * DAY, as_of=T0,
        )  # fmt: skip
        assert answer.points == 3 * 10**11
    seen = account(stubs, "stomatorg", customer, as_of=T0)
    assert seen.spendable_points == 6 * 10**11
    # 2 × 10^15 qualifying; regular needs 3 orders and 100,000 ₽: 1 order missing
    assert (seen.tier_id, seen.qualifying_spend_minor, seen.qualifying_orders) == (
        "base", 2 * 10**15, 2,
    )  # fmt: skip
    assert (seen.next_tier.missing_spend_minor, seen.next_tier.missing_orders) == (0, 1)


# ---- "a hold of 30 days at an as_of near the year 9999 answers INTERNAL" ------------------


def test_a_30_day_hold_at_the_last_accepted_instant(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    basket = cart(line("a", 1, 1_000_000))  # 3 % of 1,000,000 = 30,000 minor = 300 points
    near_9999 = hold_request(
        "stomatorg", customer, order, basket, 100, hold_seconds=30 * 86_400,
        as_of=datetime(9999, 12, 1, tzinfo=UTC),
    )  # fmt: skip
    expect_error(stubs.redemption.ApplyRedemption, near_9999, INVALID, "INVALID_REQUEST",
                 fields=["as_of"])  # fmt: skip
    grant(stubs, "stomatorg", customer, 500, "action", as_of=LAST_SECOND)
    held = stubs.redemption.ApplyRedemption(
        hold_request("stomatorg", customer, order, basket, 100, hold_seconds=30 * 86_400,
                     as_of=LAST_SECOND),
        timeout=TIMEOUT,
    )  # fmt: skip
    # 8999-12-31T23:59:59 + 30 days = 9000-01-30T23:59:59
    assert when(held.redemption.hold_expires_at) == datetime(9000, 1, 30, 23, 59, 59, tzinfo=UTC)
    assert held.redemption.state == redemption_pb2.REDEMPTION_STATE_HELD
    seen = account(stubs, "stomatorg", customer, as_of=LAST_SECOND)
    assert (seen.spendable_points, seen.held_points) == (400, 100)  # 500 − 100 held


# ---- "GrantPoints of points whose window has already closed ... those dead points pay the debt"


def _in_debt(stubs: Stubs) -> str:
    """A stomatorg customer owing 300 points at T0 + 1 h, with nothing to spend."""
    customer = new_id("debt")
    earned, spent = f"{customer}-1", f"{customer}-2"
    # delivered T0 − 8 days: matured at T0 − 1 day; 2 × 500,000 × 3 % = 300 points
    accrue(stubs, "stomatorg", customer, earned, cart(line("m", 2, 500_000)),
           delivered_at=T0 - 8 * DAY, as_of=T0)  # fmt: skip
    stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, spent, cart(line("n", 1, 1_000_000)), 300, as_of=T0),
        timeout=TIMEOUT,
    )
    # the earning order comes back: 300 to claw back, nothing left to take → 300 owed
    back = stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", earned, as_of=T0 + timedelta(hours=1)), timeout=TIMEOUT
    )
    assert (back.points_clawed_back, back.debt_points) == (0, 300)
    return customer


def _grant_request(
    customer: str, points: int, source: str, **dates: datetime
) -> a.GrantPointsRequest:
    request = a.GrantPointsRequest(
        request_id=new_id("g"), program_id="stomatorg", customer_id=customer, points=points,
        source=source, as_of=ts(T0 + timedelta(hours=2)),
    )  # fmt: skip
    for name, value in dates.items():
        getattr(request, name).CopyFrom(ts(value))
    return request


def test_dead_grants_are_refused_and_only_spendable_credits_pay_debt(stubs: Stubs) -> None:
    customer = _in_debt(stubs)
    now = T0 + timedelta(hours=2)
    # expires_at at the call's instant, or before: could never be spent
    for expires_at in (now, now - DAY):
        dead = _grant_request(customer, 100, "promo", expires_at=expires_at)
        expect_error(stubs.account.GrantPoints, dead, INVALID, "INVALID_REQUEST",
                     fields=["expires_at"])  # fmt: skip
    # available 100 days ago + promo's 90 days = expired 10 days ago: available_at is to blame
    dead = _grant_request(customer, 100, "promo", available_at=now - 100 * DAY)
    expect_error(stubs.account.GrantPoints, dead, INVALID, "INVALID_REQUEST",
                 fields=["available_at"])  # fmt: skip
    assert account(stubs, "stomatorg", customer, as_of=now).debt_points == 300
    # 100 action points maturing tomorrow pay nothing now: debt 300, balance 0, 100 pending
    later = stubs.account.GrantPoints(
        _grant_request(customer, 100, "action", available_at=now + DAY), timeout=TIMEOUT
    )
    assert (later.balance_after, later.debt_points) == (0, 300)
    seen = account(stubs, "stomatorg", customer, as_of=now)
    assert (seen.spendable_points, seen.pending_points, seen.debt_points) == (0, 100, 300)
    # 50 spendable now pay at once: 300 − 50 = 250
    at_once = stubs.account.GrantPoints(_grant_request(customer, 50, "action"), timeout=TIMEOUT)
    assert (at_once.balance_after, at_once.debt_points) == (0, 250)
    # tomorrow the 100 mature and pay: 250 − 100 = 150
    seen = account(stubs, "stomatorg", customer, as_of=now + DAY)
    assert (seen.spendable_points, seen.pending_points, seen.debt_points) == (0, 0, 150)
    # the ledger sums to spendable − debt = −150:
    # +300 accrual − 300 redemption − 300 debt + 100 grant + 50 grant = −150
    rows = ledger(stubs, "stomatorg", customer, as_of=now + DAY, page_size=100).entries
    assert sum(e.points for e in rows) == -150


def test_a_grant_answers_what_is_spendable_at_the_call(stubs: Stubs) -> None:
    customer = new_id("c")
    now = T0 + timedelta(hours=2)
    grant(stubs, "stomatorg", customer, 70, "action", as_of=now)
    # 30 promo maturing in a day: pending, not in balance_after (70)
    later = grant(stubs, "stomatorg", customer, 30, "promo", as_of=now, available_at=now + DAY)
    assert (later.points, later.balance_after, later.debt_points) == (30, 70, 0)
    # 40 promo granted back-dated 80 days (expire in 10): spendable now, 70 + 40 = 110
    back = grant(stubs, "stomatorg", customer, 40, "promo", as_of=now, available_at=now - 80 * DAY)
    assert back.balance_after == 110
    assert account(stubs, "stomatorg", customer, as_of=now).spendable_points == 110


# ---- "ListLedgerEntries ... the page token is not bound to its program and customer" -------


def test_a_page_token_is_bound_to_its_program_and_customer(stubs: Stubs) -> None:
    mine, theirs = new_id("c"), new_id("c")
    for customer in (mine, theirs):
        for points in (1, 2, 3):
            grant(stubs, "stomatorg", customer, points, "action")
    token = ledger(stubs, "stomatorg", mine, as_of=T0, page_size=1).next_page_token
    assert token
    for program_id, customer in (("stomatorg", theirs), ("denco", mine)):
        request = a.ListLedgerEntriesRequest(
            program_id=program_id, customer_id=customer, page_size=1, page_token=token, as_of=ts(T0)
        )
        expect_error(stubs.account.ListLedgerEntries, request, INVALID, "INVALID_REQUEST",
                     fields=["page_token"])  # fmt: skip
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    request = a.ListLedgerEntriesRequest(
        program_id="stomatorg", customer_id=mine, page_size=1, page_token=tampered, as_of=ts(T0)
    )
    expect_error(stubs.account.ListLedgerEntries, request, INVALID, "INVALID_REQUEST",
                 fields=["page_token"])  # fmt: skip
    following = ledger(stubs, "stomatorg", mine, as_of=T0, page_size=1, page_token=token)
    assert [e.points for e in following.entries] == [2]


# ---- "Match keys: brand ' IQOS ' is not excluded; payment method DENCO_CARD gets the ordinary cap"


def test_match_keys_are_trimmed_and_case_insensitive(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "denco", customer, 2_000, "loyalty")
    basket = cart(line("ok", 1, 100_000), line("smoke", 1, 50_000, brand=" IQOS "))
    option = quote(stubs, "denco", customer, basket).options[0]
    assert [(e.line_id, e.rule_id) for e in option.excluded_lines] == [("smoke", "iqos")]
    # eligible base 100,000 (IQOS excluded) × 50 % = 50,000 minor = 500 points
    assert (option.eligible_base_minor, option.max_points) == (100_000, 500)
    # paying with DENCO_CARD: 99.99 % of 100,000 = 99,990 minor = 999 points
    card = quote(stubs, "denco", customer, basket, payment_method="DENCO_CARD").options[0]
    assert card.max_points == 999


# ---- "a read at an earlier as_of than something the expiry job already wrote shows the later
# state" (last in the module: the job writes down everything due in the database up to T0 + 20 d)


def test_a_read_before_what_the_expiry_job_wrote_sees_that_moment(
    stubs: Stubs, db_url: str
) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, "stomatorg", customer, 100, "promo", expires_at=T0 + 10 * DAY)
    grant(stubs, "stomatorg", customer, 50, "action")
    # day 1: a hold of 30 for an hour; first-expiring-first it takes them from the promo
    # bucket (expires day 10; action never does)
    day_1 = T0 + DAY
    held = stubs.redemption.ApplyRedemption(
        hold_request("stomatorg", customer, order, cart(line("a", 1, 1_000_000)), 30,
                     hold_seconds=3_600, as_of=day_1),
        timeout=TIMEOUT,
    )  # fmt: skip
    assert held.balance_after == 120  # 150 − 30
    # the job at day 20 writes the lapse (day 1 + 1 h) and the promo's expiry (day 10)
    run_expiry_job(db_url, T0 + 20 * DAY)
    seen = account(stubs, "stomatorg", customer, as_of=T0 + 20 * DAY)
    assert (seen.spendable_points, seen.held_points) == (50, 0)

    def at(when: datetime) -> tuple[int, int, int]:
        found = account(stubs, "stomatorg", customer, as_of=when)
        return (
            found.spendable_points,
            found.held_points,
            dict(found.balances_by_source).get("promo", 0),
        )

    # half an hour into the hold: 30 held, 70 promo + 50 action spendable
    assert at(day_1 + timedelta(minutes=30)) == (120, 30, 70)
    state = stubs.redemption.GetRedemption(
        r.GetRedemptionRequest(program_id="stomatorg", order_id=order,
                               as_of=ts(day_1 + timedelta(minutes=30))),
        timeout=TIMEOUT,
    ).redemption.state  # fmt: skip
    assert state == redemption_pb2.REDEMPTION_STATE_HELD
    # day 5: the hold has lapsed, the promo not yet expired: 100 + 50
    assert at(T0 + 5 * DAY) == (150, 0, 100)
    assert account(stubs, "stomatorg", customer, as_of=T0 + 5 * DAY).next_expiry.points == 100
    # the instant the promo expires: 50
    assert at(T0 + 10 * DAY) == (50, 0, 0)
    # the ledger at day 20: 100 + 50 − 30 + 30 − 100 = 50 = spendable
    rows = ledger(stubs, "stomatorg", customer, as_of=T0 + 20 * DAY, page_size=100).entries
    assert [e.points for e in rows] == [100, 50, -30, 30, -100]
