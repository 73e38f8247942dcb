"""Two-phase redemption over a real server: hold, capture, release, lapse (docs/rules.md §7, §8).

Program `stomatorg`, base tier: an order may take 3 % of its eligible base; 1 point = 100 minor.
`action` points never expire; `promo` points expire when granted to. Every call says `as_of`.

Transitions: HELD → APPLIED → PARTIALLY_REVERSED → REVERSED; HELD → RELEASED;
HELD → EXPIRED at `hold_expires_at` (seen by every read at once; written down by the
expiry job or by the next mutation on the account, RELEASE entries effective at the
deadline). Refusals: HOLD_EXPIRED, HOLD_RELEASED, lines on a hold, hold_seconds outside
0..2,592,000. Buckets that expire while held: released or lapsed, their points come back
expired (RELEASE + EXPIRY at that instant); captured, they stay spent.
"""

from datetime import datetime, timedelta

import grpc
import pytest
from sqlalchemy import func, select

from loyalty.v1 import account_service_pb2 as a
from loyalty.v1 import redemption_pb2 as r
from loyalty.v1 import redemption_service_pb2 as pb
from server.store.db import create_database_engine
from server.store.schema import redemptions
from tests.e2e.builders import (
    T0,
    TIMEOUT,
    account,
    allocations,
    apply_request,
    capture_request,
    cart,
    grant,
    hold_request,
    hours,
    ledger,
    line,
    new_id,
    quote,
    redemption_at,
    reverse_request,
    ts,
    when,
)
from tests.e2e.rpc_errors import expect_error
from tests.support.server import Stubs, run_expiry_job

pytestmark = pytest.mark.timeout(120)

PROGRAM = "stomatorg"
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
MAX_HOLD_SECONDS = 2_592_000  # 30 days

# x: 2 × 5,000.00 ₽ = 1,000,000 minor; y: 1 × 10,000.00 ₽ = 1,000,000 minor.
# Eligible base 2,000,000 minor; base-tier cap 3 % = 60,000 minor = 600 points, so
# with 500 points or fewer the balance is what binds.
CART = cart(line("x", 2, 500_000), line("y", 1, 1_000_000))
# 300 points over two lines of equal net: 150 each, 15,000 minor each.
SPLIT_300 = [("x", 150, 15_000), ("y", 150, 15_000)]

Entry = tuple[str, int, str, str, datetime]  # kind, points, source, order_id, effective_at


# ---- helpers -----------------------------------------------------------------------


def hold(
    stubs: Stubs, customer: str, order: str, points: int, *, seconds: int, as_of: datetime = T0
) -> pb.ApplyRedemptionResponse:
    return stubs.redemption.ApplyRedemption(
        hold_request(PROGRAM, customer, order, CART, points, hold_seconds=seconds, as_of=as_of),
        timeout=TIMEOUT,
    )


def capture(
    stubs: Stubs, order: str, *, as_of: datetime, request_id: str | None = None
) -> r.Redemption:
    return stubs.redemption.CaptureRedemption(
        capture_request(PROGRAM, order, as_of=as_of, request_id=request_id), timeout=TIMEOUT
    ).redemption


def release(stubs: Stubs, order: str, *, as_of: datetime) -> pb.ReverseRedemptionResponse:
    return stubs.redemption.ReverseRedemption(
        reverse_request(PROGRAM, order, as_of=as_of, reason="payment failed"), timeout=TIMEOUT
    )


def state(stubs: Stubs, order: str, *, as_of: datetime) -> str:
    return name(redemption_at(stubs, PROGRAM, order, as_of=as_of).state)


def name(value: int) -> str:
    return r.RedemptionState.Name(value).removeprefix("REDEMPTION_STATE_")


def points_of(stubs: Stubs, customer: str, *, as_of: datetime) -> tuple[int, int]:
    """(spendable, held) as GetAccount sees them at `as_of`."""
    seen = account(stubs, PROGRAM, customer, as_of=as_of)
    return seen.spendable_points, seen.held_points


def quoted(stubs: Stubs, customer: str, *, as_of: datetime) -> tuple[int, int]:
    """(spendable_points, max_points) of a quote for CART at `as_of`."""
    answer = quote(stubs, PROGRAM, customer, CART, as_of=as_of)
    return answer.spendable_points, answer.options[0].max_points


def entries(stubs: Stubs, customer: str, *, as_of: datetime) -> list[Entry]:
    """Every ledger entry effective at or before `as_of`, oldest first (all pages)."""
    found: list[Entry] = []
    token = ""
    while True:
        page = ledger(stubs, PROGRAM, customer, as_of=as_of, page_size=50, page_token=token)
        found += [
            (
                a.LedgerEntryKind.Name(e.kind).removeprefix("LEDGER_ENTRY_KIND_"),
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


def assert_entries(stubs: Stubs, customer: str, *, as_of: datetime, expected: list[Entry]) -> None:
    """The ledger is `expected`, oldest first; entries of one instant in any order."""
    found = entries(stubs, customer, as_of=as_of)
    assert [e[4] for e in found] == sorted(e[4] for e in found), found
    assert sorted(found) == sorted(expected), found


def assert_ledger_balanced(stubs: Stubs, customer: str, *, at: datetime) -> None:
    """docs/rules.md §7: once the expiry job has run up to `at`, the entries effective at or before
    `at` sum to spendable − debt at `at`."""
    seen = account(stubs, PROGRAM, customer, as_of=at)
    total = sum(e[1] for e in entries(stubs, customer, as_of=at))
    assert total == seen.spendable_points - seen.debt_points, (total, seen)


# ---- transitions -------------------------------------------------------------------


def test_hold_then_capture_then_partial_and_full_reversal(stubs: Stubs, db_url: str) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    deadline = T0 + timedelta(seconds=3600)

    held = hold(stubs, customer, order, 300, seconds=3600)
    assert name(held.redemption.state) == "HELD"
    assert (held.redemption.points, held.redemption.discount_minor) == (300, 30_000)
    assert allocations(held.redemption) == SPLIT_300
    assert held.redemption.points_reversed == 0
    assert when(held.redemption.created_at) == T0
    assert when(held.redemption.hold_expires_at) == deadline  # T0 + 3,600 s
    assert held.balance_after == 500 - 300
    # Held points leave the spendable balance at once and are shown as held.
    assert points_of(stubs, customer, as_of=T0) == (200, 300)
    assert dict(account(stubs, PROGRAM, customer).balances_by_source) == {"action": 200}
    assert quoted(stubs, customer, as_of=T0) == (200, 200)  # min(cap 600, balance 200)
    # They cannot be spent twice: another order may take at most the 200 left.
    expect_error(
        stubs.redemption.ApplyRedemption,
        apply_request(PROGRAM, customer, new_id("o"), CART, 201),
        grpc.StatusCode.FAILED_PRECONDITION,
        "EXCEEDS_MAXIMUM",
    )
    grant_and_hold = [
        ("GRANT", 500, "action", "", T0),
        ("HOLD", -300, "action", order, T0),
    ]
    assert_entries(stubs, customer, as_of=T0, expected=grant_and_hold)

    # Capture half an hour later: APPLIED, same points and allocation, no ledger entry.
    half_hour = hours(0.5)
    assert state(stubs, order, as_of=half_hour) == "HELD"
    capture_id = new_id("capture")
    captured = capture(stubs, order, as_of=half_hour, request_id=capture_id)
    assert name(captured.state) == "APPLIED"
    assert (captured.redemption_id, captured.points) == (held.redemption.redemption_id, 300)
    assert allocations(captured) == SPLIT_300
    assert when(captured.hold_expires_at) == deadline  # it was a hold; the deadline stays
    assert points_of(stubs, customer, as_of=half_hour) == (200, 0)
    assert_entries(stubs, customer, as_of=half_hour, expected=grant_and_hold)

    # Past the deadline: a captured hold never lapses. The same capture again returns the
    # first answer; a new capture returns the redemption as it is; nothing comes back.
    later = hours(2)
    assert capture(stubs, order, as_of=later, request_id=capture_id) == captured
    assert capture(stubs, order, as_of=later) == captured
    assert redemption_at(stubs, PROGRAM, order, as_of=later) == captured
    assert points_of(stubs, customer, as_of=later) == (200, 0)
    run_expiry_job(db_url, later)
    assert points_of(stubs, customer, as_of=later) == (200, 0)
    assert_entries(stubs, customer, as_of=later, expected=grant_and_hold)

    # Return 1 of the 2 units of x: floor(150 × 1 / 2) = 75.
    first = stubs.redemption.ReverseRedemption(
        reverse_request(PROGRAM, order, ("x", 1), as_of=hours(3)), timeout=TIMEOUT
    )
    assert first.points_returned == 75
    assert name(first.redemption.state) == "PARTIALLY_REVERSED"
    assert first.redemption.points_reversed == 75
    assert first.balance_after == 200 + 75

    # Everything that remains: x 150 − 75 = 75, y 150 → 225; all 300 are back.
    rest = stubs.redemption.ReverseRedemption(
        reverse_request(PROGRAM, order, as_of=hours(4)), timeout=TIMEOUT
    )
    assert rest.points_returned == 225
    assert name(rest.redemption.state) == "REVERSED"
    assert rest.redemption.points_reversed == 300
    assert rest.balance_after == 500
    assert points_of(stubs, customer, as_of=hours(4)) == (500, 0)
    assert_entries(
        stubs,
        customer,
        as_of=hours(4),
        expected=[
            *grant_and_hold,
            ("REVERSAL", 75, "action", order, hours(3)),
            ("REVERSAL", 225, "action", order, hours(4)),
        ],
    )
    assert_ledger_balanced(stubs, customer, at=hours(4))  # nothing expires: job ran at `later`


def test_release_gives_every_point_back_and_a_released_hold_cannot_be_captured(
    stubs: Stubs, db_url: str
) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    hold(stubs, customer, order, 300, seconds=600)  # deadline T0 + 10 min
    released_at = T0 + 5 * MINUTE

    released = release(stubs, order, as_of=released_at)
    assert released.points_returned == 300
    assert (released.points_clawed_back, released.debt_points) == (0, 0)
    assert name(released.redemption.state) == "RELEASED"
    assert released.redemption.points == 300  # what was held; none of it was spent
    # Nothing was reversed: the points went back as a release, not as a return.
    assert released.redemption.points_reversed == 0
    assert released.balance_after == 500
    assert points_of(stubs, customer, as_of=released_at) == (500, 0)
    assert quoted(stubs, customer, as_of=released_at) == (500, 500)
    expected = [
        ("GRANT", 500, "action", "", T0),
        ("HOLD", -300, "action", order, T0),
        ("RELEASE", 300, "action", order, released_at),
    ]
    assert_entries(stubs, customer, as_of=released_at, expected=expected)

    # RELEASED is final: it does not turn EXPIRED at the deadline, it cannot be captured,
    # releasing it again gives back nothing, and the expiry job leaves it alone.
    after_deadline = T0 + 20 * MINUTE
    assert state(stubs, order, as_of=after_deadline) == "RELEASED"
    expect_error(
        stubs.redemption.CaptureRedemption,
        capture_request(PROGRAM, order, as_of=released_at + SECOND),
        grpc.StatusCode.FAILED_PRECONDITION,
        "HOLD_RELEASED",
        metadata={"order_id": order},
    )
    again = release(stubs, order, as_of=released_at + MINUTE)
    assert again.points_returned == 0
    assert name(again.redemption.state) == "RELEASED"
    assert again.balance_after == 500
    run_expiry_job(db_url, after_deadline)
    assert state(stubs, order, as_of=after_deadline) == "RELEASED"
    assert points_of(stubs, customer, as_of=after_deadline) == (500, 0)
    assert_entries(stubs, customer, as_of=after_deadline, expected=expected)
    assert_ledger_balanced(stubs, customer, at=after_deadline)


def test_a_hold_lapses_exactly_at_its_deadline_and_the_expiry_job_writes_it_down(
    stubs: Stubs, db_url: str
) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    apply = hold_request(PROGRAM, customer, order, CART, 300, hold_seconds=600)
    held = stubs.redemption.ApplyRedemption(apply, timeout=TIMEOUT)
    deadline = T0 + 10 * MINUTE
    assert when(held.redemption.hold_expires_at) == deadline
    just_before = deadline - SECOND

    # One second before the deadline it is still held, by every read.
    assert points_of(stubs, customer, as_of=just_before) == (200, 300)
    assert quoted(stubs, customer, as_of=just_before) == (200, 200)
    assert state(stubs, order, as_of=just_before) == "HELD"

    # At the deadline every read sees the points back, before any job has run:
    # spendable 500, held 0; the quote's maximum is min(cap 600, balance 500) = 500.
    assert points_of(stubs, customer, as_of=deadline) == (500, 0)
    assert dict(account(stubs, PROGRAM, customer, as_of=deadline).balances_by_source) == {
        "action": 500
    }
    assert quoted(stubs, customer, as_of=deadline) == (500, 500)
    assert state(stubs, order, as_of=deadline) == "EXPIRED"
    # Reads wrote nothing: one second earlier it is still HELD, and no RELEASE entry yet.
    assert state(stubs, order, as_of=just_before) == "HELD"
    grant_and_hold = [
        ("GRANT", 500, "action", "", T0),
        ("HOLD", -300, "action", order, T0),
    ]
    assert_entries(stubs, customer, as_of=deadline, expected=grant_and_hold)

    # Capturing at the deadline is too late.
    expect_error(
        stubs.redemption.CaptureRedemption,
        capture_request(PROGRAM, order, as_of=deadline),
        grpc.StatusCode.FAILED_PRECONDITION,
        "HOLD_EXPIRED",
        metadata={"order_id": order},
    )

    # The expiry job, an hour later, writes the lapse down: EXPIRED, and a RELEASE of the
    # 300 effective at the deadline (not at the job's instant).
    job_at = deadline + timedelta(hours=1)
    run_expiry_job(db_url, job_at)
    # A read at an `as_of` before the deadline still sees that moment (docs/rules.md §7): held.
    assert state(stubs, order, as_of=just_before) == "HELD"
    assert points_of(stubs, customer, as_of=just_before) == (200, 300)
    assert state(stubs, order, as_of=deadline) == "EXPIRED"
    assert_entries(stubs, customer, as_of=just_before, expected=grant_and_hold)
    lapsed = [*grant_and_hold, ("RELEASE", 300, "action", order, deadline)]
    assert_entries(stubs, customer, as_of=deadline, expected=lapsed)
    assert points_of(stubs, customer, as_of=job_at) == (500, 0)
    assert_ledger_balanced(stubs, customer, at=deadline)
    assert_ledger_balanced(stubs, customer, at=job_at)

    # Written down once: a second run changes nothing. Capture still fails (even at an
    # `as_of` before the deadline, now that the lapse is written); a release gives back 0.
    run_expiry_job(db_url, job_at)
    assert_entries(stubs, customer, as_of=job_at, expected=lapsed)
    for at in (just_before, job_at):
        expect_error(
            stubs.redemption.CaptureRedemption,
            capture_request(PROGRAM, order, as_of=at),
            grpc.StatusCode.FAILED_PRECONDITION,
            "HOLD_EXPIRED",
            metadata={"order_id": order},
        )
    after = release(stubs, order, as_of=job_at)
    assert after.points_returned == 0
    assert name(after.redemption.state) == "EXPIRED"
    assert after.redemption.points_reversed == 0
    assert after.balance_after == 500
    # The hold's ApplyRedemption, replayed, answers as it first did and holds nothing again.
    apply.as_of.CopyFrom(ts(job_at))
    assert stubs.redemption.ApplyRedemption(apply, timeout=TIMEOUT) == held
    assert points_of(stubs, customer, as_of=job_at) == (500, 0)
    assert_entries(stubs, customer, as_of=job_at, expected=lapsed)


@pytest.mark.parametrize("mutation", ["grant", "apply"])
def test_the_next_mutation_on_the_account_writes_the_lapse_down(
    stubs: Stubs, db_url: str, mutation: str
) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    hold(stubs, customer, order, 300, seconds=600)
    deadline = T0 + 10 * MINUTE
    mutation_at = deadline + 5 * MINUTE
    other = new_id("o")

    if mutation == "grant":
        granted = grant(stubs, PROGRAM, customer, 50, "action", as_of=mutation_at)
        assert granted.balance_after == 500 + 50  # the lapsed 300 are back, then + 50
        last: Entry = ("GRANT", 50, "action", "", mutation_at)
        balance = 550
    else:
        # The released points are spendable at once: 450 ≤ min(cap 600, balance 500).
        applied = stubs.redemption.ApplyRedemption(
            apply_request(PROGRAM, customer, other, CART, 450, as_of=mutation_at),
            timeout=TIMEOUT,
        )
        assert name(applied.redemption.state) == "APPLIED"
        assert applied.balance_after == 500 - 450
        last = ("REDEMPTION", -450, "action", other, mutation_at)
        balance = 50

    # Written down by that call, RELEASE at the deadline; a read before the deadline still
    # sees that moment (docs/rules.md §7): HELD.
    assert state(stubs, order, as_of=deadline - SECOND) == "HELD"
    assert state(stubs, order, as_of=deadline) == "EXPIRED"
    expected = [
        ("GRANT", 500, "action", "", T0),
        ("HOLD", -300, "action", order, T0),
        ("RELEASE", 300, "action", order, deadline),
        last,
    ]
    assert_entries(stubs, customer, as_of=mutation_at, expected=expected)
    assert points_of(stubs, customer, as_of=mutation_at) == (balance, 0)
    # The expiry job finds nothing left to do for it.
    run_expiry_job(db_url, mutation_at)
    assert_entries(stubs, customer, as_of=mutation_at, expected=expected)
    assert_ledger_balanced(stubs, customer, at=mutation_at)


def test_two_holds_lapse_each_at_its_own_deadline(stubs: Stubs, db_url: str) -> None:
    customer, first, second = new_id("c"), new_id("o"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    hold(stubs, customer, first, 100, seconds=60)  # lapses at T0 + 1 min
    hold(stubs, customer, second, 150, seconds=120)  # lapses at T0 + 2 min
    assert points_of(stubs, customer, as_of=T0) == (250, 250)
    assert points_of(stubs, customer, as_of=T0 + MINUTE - SECOND) == (250, 250)
    assert points_of(stubs, customer, as_of=T0 + MINUTE) == (350, 150)
    assert points_of(stubs, customer, as_of=T0 + 2 * MINUTE - SECOND) == (350, 150)
    assert points_of(stubs, customer, as_of=T0 + 2 * MINUTE) == (500, 0)
    # The job at T0 + 90 s writes down only the first.
    run_expiry_job(db_url, T0 + 90 * SECOND)
    assert state(stubs, first, as_of=T0 + MINUTE) == "EXPIRED"
    assert state(stubs, second, as_of=T0 + MINUTE) == "HELD"
    # read before its deadline, the written lapse is not seen yet (docs/rules.md §7)
    assert state(stubs, first, as_of=T0) == "HELD"
    assert points_of(stubs, customer, as_of=T0) == (250, 250)
    assert points_of(stubs, customer, as_of=T0 + 90 * SECOND) == (350, 150)
    assert_ledger_balanced(stubs, customer, at=T0 + 90 * SECOND)
    # The second can still be captured before its own deadline.
    assert name(capture(stubs, second, as_of=T0 + 100 * SECOND).state) == "APPLIED"
    run_expiry_job(db_url, T0 + 3 * MINUTE)
    assert points_of(stubs, customer, as_of=T0 + 3 * MINUTE) == (350, 0)
    assert_entries(
        stubs,
        customer,
        as_of=T0 + 3 * MINUTE,
        expected=[
            ("GRANT", 500, "action", "", T0),
            ("HOLD", -100, "action", first, T0),
            ("HOLD", -150, "action", second, T0),
            ("RELEASE", 100, "action", first, T0 + MINUTE),
        ],
    )
    assert_ledger_balanced(stubs, customer, at=T0 + 3 * MINUTE)


# ---- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [-1, -600, MAX_HOLD_SECONDS + 1, 10**12])
def test_hold_seconds_outside_zero_to_thirty_days_is_invalid(stubs: Stubs, seconds: int) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    expect_error(
        stubs.redemption.ApplyRedemption,
        hold_request(PROGRAM, customer, order, CART, 300, hold_seconds=seconds),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
        fields=["hold_seconds"],
    )
    assert points_of(stubs, customer, as_of=T0) == (500, 0)
    expect_error(
        stubs.redemption.GetRedemption,
        pb.GetRedemptionRequest(program_id=PROGRAM, order_id=order, as_of=ts(T0)),
        grpc.StatusCode.NOT_FOUND,
        "ORDER_NOT_FOUND",
    )


def test_the_longest_hold_is_thirty_days(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    held = hold(stubs, customer, order, 300, seconds=MAX_HOLD_SECONDS)
    deadline = T0 + timedelta(days=30)
    assert when(held.redemption.hold_expires_at) == deadline
    assert state(stubs, order, as_of=deadline - SECOND) == "HELD"
    assert points_of(stubs, customer, as_of=deadline - SECOND) == (200, 300)
    assert state(stubs, order, as_of=deadline) == "EXPIRED"
    assert points_of(stubs, customer, as_of=deadline) == (500, 0)


def test_lines_on_a_hold_are_invalid_and_change_nothing(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    hold(stubs, customer, order, 300, seconds=600)
    for returned in ([("x", 1)], [("x", 2), ("y", 1)]):
        expect_error(
            stubs.redemption.ReverseRedemption,
            reverse_request(PROGRAM, order, *returned, as_of=T0 + MINUTE),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REQUEST",
            fields=["lines"],
        )
    assert state(stubs, order, as_of=T0 + MINUTE) == "HELD"
    assert points_of(stubs, customer, as_of=T0 + MINUTE) == (200, 300)
    assert_entries(
        stubs,
        customer,
        as_of=T0 + MINUTE,
        expected=[("GRANT", 500, "action", "", T0), ("HOLD", -300, "action", order, T0)],
    )
    # Captured, the same lines are an ordinary partial return: floor(150 × 1 / 2) = 75.
    capture(stubs, order, as_of=T0 + MINUTE)
    back = stubs.redemption.ReverseRedemption(
        reverse_request(PROGRAM, order, ("x", 1), as_of=T0 + 2 * MINUTE), timeout=TIMEOUT
    )
    assert (back.points_returned, name(back.redemption.state)) == (75, "PARTIALLY_REVERSED")


def test_capture_after_the_deadline_is_hold_expired_and_changes_nothing(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    hold(stubs, customer, order, 300, seconds=600)
    deadline = T0 + 10 * MINUTE
    for at in (deadline, deadline + SECOND, deadline + timedelta(days=1)):
        expect_error(
            stubs.redemption.CaptureRedemption,
            capture_request(PROGRAM, order, as_of=at),
            grpc.StatusCode.FAILED_PRECONDITION,
            "HOLD_EXPIRED",
            metadata={"order_id": order},
        )
    assert points_of(stubs, customer, as_of=deadline) == (500, 0)
    # A refused capture spent nothing.
    assert sum(e[1] for e in entries(stubs, customer, as_of=deadline)) == 500 - 300


def test_capture_of_a_plain_redemption_returns_it_and_unknown_orders_are_not_found(
    stubs: Stubs,
) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 500, "action")
    applied = stubs.redemption.ApplyRedemption(
        apply_request(PROGRAM, customer, order, CART, 300), timeout=TIMEOUT
    )
    assert not applied.redemption.HasField("hold_expires_at")
    assert capture(stubs, order, as_of=T0 + MINUTE) == applied.redemption
    assert points_of(stubs, customer, as_of=T0 + MINUTE) == (200, 0)
    expect_error(
        stubs.redemption.CaptureRedemption,
        capture_request(PROGRAM, new_id("unknown"), as_of=T0),
        grpc.StatusCode.NOT_FOUND,
        "ORDER_NOT_FOUND",
    )
    # A capture's request_id reused for another order is refused.
    reused = new_id("capture")
    capture(stubs, order, as_of=T0, request_id=reused)
    expect_error(
        stubs.redemption.CaptureRedemption,
        capture_request(PROGRAM, new_id("o"), as_of=T0, request_id=reused),
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )


# ---- buckets that expire while their points are held --------------------------------
#
# 100 promo points expire at E = T0 + 1 h; 400 action points never expire. A hold of 300
# takes first-expiring-first: the 100 promo, then 200 action. The hold's deadline is
# D = T0 + 2 h, after E.

E = hours(1)
D = hours(2)


def _expiring_hold(stubs: Stubs) -> tuple[str, str]:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 100, "promo", expires_at=E)
    grant(stubs, PROGRAM, customer, 400, "action")
    held = hold(stubs, customer, order, 300, seconds=7200)
    assert when(held.redemption.hold_expires_at) == D
    assert points_of(stubs, customer, as_of=T0) == (200, 300)
    # At E the promo bucket closes; its 100 are held, so nothing spendable changes.
    assert points_of(stubs, customer, as_of=E) == (200, 300)
    return customer, order


def _expiring_hold_entries(order: str) -> list[Entry]:
    return [
        ("GRANT", 100, "promo", "", T0),
        ("GRANT", 400, "action", "", T0),
        ("HOLD", -100, "promo", order, T0),
        ("HOLD", -200, "action", order, T0),
    ]


def test_released_after_its_bucket_expired_the_points_come_back_expired(
    stubs: Stubs, db_url: str
) -> None:
    customer, order = _expiring_hold(stubs)
    released_at = hours(1.5)  # after E, before D
    released = release(stubs, order, as_of=released_at)
    # All 300 go back to their buckets; the promo 100 land in a closed bucket and stay
    # expired, so the balance is the 200 action left + 200 action back = 400.
    assert released.points_returned == 300
    assert name(released.redemption.state) == "RELEASED"
    assert released.balance_after == 400
    seen = account(stubs, PROGRAM, customer, as_of=released_at)
    assert (seen.spendable_points, seen.held_points) == (400, 0)
    assert dict(seen.balances_by_source) == {"action": 400}
    assert not seen.HasField("next_expiry")  # only never-expiring points are left
    assert quoted(stubs, customer, as_of=released_at) == (400, 400)
    run_expiry_job(db_url, released_at)
    expected = [
        *_expiring_hold_entries(order),
        ("RELEASE", 100, "promo", order, released_at),
        ("EXPIRY", -100, "promo", order, released_at),
        ("RELEASE", 200, "action", order, released_at),
    ]
    assert_entries(stubs, customer, as_of=released_at, expected=expected)
    assert_ledger_balanced(stubs, customer, at=released_at)  # 500 − 300 + 300 − 100 = 400
    assert points_of(stubs, customer, as_of=D) == (400, 0)


def test_lapsed_after_its_bucket_expired_the_points_come_back_expired(
    stubs: Stubs, db_url: str
) -> None:
    customer, order = _expiring_hold(stubs)
    assert points_of(stubs, customer, as_of=D - SECOND) == (200, 300)
    # At D the hold lapses: 200 action come back; the promo 100 stay expired.
    assert points_of(stubs, customer, as_of=D) == (400, 0)
    assert quoted(stubs, customer, as_of=D) == (400, 400)
    assert state(stubs, order, as_of=D) == "EXPIRED"
    run_expiry_job(db_url, D)
    assert state(stubs, order, as_of=D) == "EXPIRED"
    # a second before D, the written lapse and expiry are not seen yet (docs/rules.md §7)
    assert state(stubs, order, as_of=D - SECOND) == "HELD"
    assert points_of(stubs, customer, as_of=D - SECOND) == (200, 300)
    assert_entries(
        stubs,
        customer,
        as_of=D,
        expected=[
            *_expiring_hold_entries(order),
            ("RELEASE", 100, "promo", order, D),
            ("EXPIRY", -100, "promo", order, D),
            ("RELEASE", 200, "action", order, D),
        ],
    )
    assert_ledger_balanced(stubs, customer, at=D)
    assert points_of(stubs, customer, as_of=hours(3)) == (400, 0)


def test_captured_after_its_bucket_expired_the_points_stay_spent(stubs: Stubs, db_url: str) -> None:
    customer, order = _expiring_hold(stubs)
    captured = capture(stubs, order, as_of=hours(1.5))  # after E, before D
    assert (name(captured.state), captured.points) == ("APPLIED", 300)
    assert points_of(stubs, customer, as_of=hours(1.5)) == (200, 0)
    # Nothing comes back at D, and the expiry job has nothing of the promo bucket left to
    # expire: its 100 were spent while it was open.
    assert points_of(stubs, customer, as_of=D) == (200, 0)
    run_expiry_job(db_url, hours(3))
    assert_entries(stubs, customer, as_of=hours(3), expected=_expiring_hold_entries(order))
    assert_ledger_balanced(stubs, customer, at=hours(3))  # 500 − 300 = 200

    # Reversed as usual afterwards: the 100 go back to the closed promo bucket and stay
    # expired (docs/rules.md §6); the 200 action points are spendable again.
    back = release(stubs, order, as_of=hours(3))
    assert back.points_returned == 300
    assert name(back.redemption.state) == "REVERSED"
    assert back.balance_after == 400
    assert_entries(
        stubs,
        customer,
        as_of=hours(3),
        expected=[
            *_expiring_hold_entries(order),
            ("REVERSAL", 100, "promo", order, hours(3)),
            ("EXPIRY", -100, "promo", order, hours(3)),
            ("REVERSAL", 200, "action", order, hours(3)),
        ],
    )
    assert_ledger_balanced(stubs, customer, at=hours(3))


def test_a_lapse_before_its_bucket_expires_gives_the_points_back_until_they_expire(
    stubs: Stubs, db_url: str
) -> None:
    customer, order = new_id("c"), new_id("o")
    grant(stubs, PROGRAM, customer, 100, "promo", expires_at=E)
    grant(stubs, PROGRAM, customer, 400, "action")
    hold(stubs, customer, order, 300, seconds=600)  # promo 100 + action 200, until T0 + 10 min
    deadline = T0 + 10 * MINUTE
    # From the deadline to E the promo 100 are spendable again; from E they are gone.
    promo_back = account(stubs, PROGRAM, customer, as_of=deadline)
    assert (promo_back.spendable_points, promo_back.held_points) == (500, 0)
    assert dict(promo_back.balances_by_source) == {"promo": 100, "action": 400}
    assert (when(promo_back.next_expiry.expires_at), promo_back.next_expiry.points) == (E, 100)
    seen = {at: points_of(stubs, customer, as_of=at)[0] for at in (deadline, E - SECOND, E)}
    assert seen == {deadline: 500, E - SECOND: 500, E: 400}
    # One job run after E writes both: the lapse at the deadline, then the expiry at E.
    run_expiry_job(db_url, hours(2))
    assert_entries(
        stubs,
        customer,
        as_of=hours(2),
        expected=[
            ("GRANT", 100, "promo", "", T0),
            ("GRANT", 400, "action", "", T0),
            ("HOLD", -100, "promo", order, T0),
            ("HOLD", -200, "action", order, T0),
            ("RELEASE", 100, "promo", order, deadline),
            ("RELEASE", 200, "action", order, deadline),
            ("EXPIRY", -100, "promo", "", E),
        ],
    )
    assert_ledger_balanced(stubs, customer, at=hours(2))
    # At each earlier instant the ledger sums to what the reads saw then, before the job
    # (reads at an earlier `as_of` now see the bucket as the job left it, so compare with
    # what they said before).
    for at, spendable in seen.items():
        assert sum(e[1] for e in entries(stubs, customer, as_of=at)) == spendable, at


# ---- debt ----------------------------------------------------------------------------


def test_released_points_pay_debt_first(stubs: Stubs, db_url: str) -> None:
    """docs/rules.md §5: every credit pays outstanding debt first — points returned by a reversal
    too. A release is ReverseRedemption giving held points back, so it pays debt first;
    otherwise holding points while an earning order is returned would dodge its clawback."""
    customer, earned, spent = new_id("c"), new_id("o"), new_id("o")
    # An order of 10,000.00 ₽ delivered at T0 − 8 days earns 3 % = 30,000 minor = 300
    # points, pending 7 days: spendable from T0 − 1 day.
    stubs.account.AccrueOrder(
        a.AccrueOrderRequest(
            request_id=new_id("accrue"),
            program_id=PROGRAM,
            customer_id=customer,
            order_id=earned,
            cart=cart(line("g", 1, 1_000_000)),
            delivered_at=ts(T0 - timedelta(days=8)),
            as_of=ts(T0 - timedelta(days=8)),
        ),
        timeout=TIMEOUT,
    )
    assert points_of(stubs, customer, as_of=T0) == (300, 0)
    hold(stubs, customer, spent, 300, seconds=3600)
    # The earning order comes back: its 300 points are held, so nothing can be clawed
    # back and all 300 become debt.
    returned = stubs.redemption.ReverseRedemption(
        reverse_request(PROGRAM, earned, as_of=T0 + MINUTE), timeout=TIMEOUT
    )
    assert (returned.points_clawed_back, returned.debt_points) == (0, 300)
    seen = account(stubs, PROGRAM, customer, as_of=T0 + MINUTE)
    assert (seen.spendable_points, seen.held_points, seen.debt_points) == (0, 300, 300)

    # The held 300 come back: they pay the 300 of debt first, nothing is left to spend.
    released = release(stubs, spent, as_of=T0 + 2 * MINUTE)
    assert released.points_returned == 300
    assert released.balance_after == 0
    seen = account(stubs, PROGRAM, customer, as_of=T0 + 2 * MINUTE)
    assert (seen.spendable_points, seen.held_points, seen.debt_points) == (0, 0, 0)
    run_expiry_job(db_url, T0 + 2 * MINUTE)
    assert_ledger_balanced(stubs, customer, at=T0 + 2 * MINUTE)


def test_lapsed_points_pay_debt_first(stubs: Stubs, db_url: str) -> None:
    """The same with the hold lapsing: at the deadline the 300 pay the debt (reads too)."""
    customer, earned, spent = new_id("c"), new_id("o"), new_id("o")
    stubs.account.AccrueOrder(
        a.AccrueOrderRequest(
            request_id=new_id("accrue"),
            program_id=PROGRAM,
            customer_id=customer,
            order_id=earned,
            cart=cart(line("g", 1, 1_000_000)),
            delivered_at=ts(T0 - timedelta(days=8)),
            as_of=ts(T0 - timedelta(days=8)),
        ),
        timeout=TIMEOUT,
    )
    hold(stubs, customer, spent, 300, seconds=600)
    stubs.redemption.ReverseRedemption(
        reverse_request(PROGRAM, earned, as_of=T0 + MINUTE), timeout=TIMEOUT
    )
    deadline = T0 + 10 * MINUTE
    seen = account(stubs, PROGRAM, customer, as_of=deadline - SECOND)
    assert (seen.spendable_points, seen.held_points, seen.debt_points) == (0, 300, 300)
    seen = account(stubs, PROGRAM, customer, as_of=deadline)
    assert (seen.spendable_points, seen.held_points, seen.debt_points) == (0, 0, 0)
    assert quoted(stubs, customer, as_of=deadline) == (0, 0)
    run_expiry_job(db_url, deadline)
    seen = account(stubs, PROGRAM, customer, as_of=deadline)
    assert (seen.spendable_points, seen.held_points, seen.debt_points) == (0, 0, 0)
    assert_ledger_balanced(stubs, customer, at=deadline)


def test_no_redemption_is_left_held_past_its_deadline_after_the_job(db_url: str) -> None:
    """Run last in this module: a job far in the future leaves nothing HELD and lapsed."""
    far = T0 + timedelta(days=60)
    run_expiry_job(db_url, far)
    engine = create_database_engine(db_url, pool_size=1)
    try:
        with engine.connect() as connection:
            states = connection.execute(
                select(redemptions.c.state, func.count()).group_by(redemptions.c.state)
            ).all()
            left = connection.execute(
                select(func.count()).where(
                    redemptions.c.state == "HELD", redemptions.c.hold_expires_at <= far
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert left == 0
    assert {"APPLIED", "EXPIRED", "RELEASED"} <= {row.state for row in states}
