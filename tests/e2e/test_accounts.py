"""GetAccount, GrantPoints and ListLedgerEntries over a real server.

Stomatorg sources: `loyalty` and `promo` expire 90 days after `available_at`, `action` never;
denco `loyalty` 365 days (docs/rules.md §5). A bucket is spendable when
available_at ≤ t < expires_at.
"""

from datetime import UTC, datetime

from loyalty.v1 import account_service_pb2 as a
from tests.e2e.builders import (
    T0,
    TIMEOUT,
    account,
    apply_request,
    cart,
    days,
    grant,
    hours,
    ledger,
    line,
    new_id,
    reverse_request,
    when,
)
from tests.support.server import Stubs

GRANT, REDEMPTION, REVERSAL = (
    a.LEDGER_ENTRY_KIND_GRANT,
    a.LEDGER_ENTRY_KIND_REDEMPTION,
    a.LEDGER_ENTRY_KIND_REVERSAL,
)


def test_unknown_customer_is_an_empty_account_at_the_base_tier(stubs: Stubs) -> None:
    response = account(stubs, "stomatorg", new_id("nobody"))
    assert response.spendable_points == 0
    assert response.pending_points == 0
    assert response.held_points == 0
    assert response.debt_points == 0
    assert dict(response.balances_by_source) == {}
    assert not response.HasField("next_expiry")
    assert response.tier_id == "base"
    assert (response.qualifying_spend_minor, response.qualifying_orders) == (0, 0)
    # regular needs ≥ 3 orders and ≥ 100,000.00 RUB = 10,000,000 minor; nothing counted yet
    assert response.next_tier.tier_id == "regular"
    assert response.next_tier.missing_spend_minor == 10_000_000
    assert response.next_tier.missing_orders == 3


def test_denco_has_one_tier_and_no_next(stubs: Stubs) -> None:
    response = account(stubs, "denco", new_id("nobody"))
    assert response.tier_id == "standard"
    assert not response.HasField("next_tier")


def test_grant_default_expiry_follows_the_source(stubs: Stubs) -> None:
    customer = new_id("c")
    loyalty = grant(stubs, "stomatorg", customer, 150, "loyalty")
    assert (loyalty.points, loyalty.balance_after, loyalty.debt_points) == (150, 150, 0)
    action = grant(stubs, "stomatorg", customer, 40, "action")
    assert action.balance_after == 190
    response = account(stubs, "stomatorg", customer)
    assert dict(response.balances_by_source) == {"loyalty": 150, "action": 40}
    # loyalty: T0 + 90 days = 2026-05-30 09:00 UTC; action never expires
    assert when(response.next_expiry.expires_at) == datetime(2026, 5, 30, 9, 0, tzinfo=UTC)
    assert response.next_expiry.points == 150
    # the last instant before expiry still counts; at it, only action is left
    before = account(
        stubs, "stomatorg", customer, as_of=datetime(2026, 5, 30, 8, 59, 59, tzinfo=UTC)
    )
    assert before.spendable_points == 190
    at_expiry = account(stubs, "stomatorg", customer, as_of=days(90))
    assert at_expiry.spendable_points == 40
    assert dict(at_expiry.balances_by_source) == {"action": 40}
    assert not at_expiry.HasField("next_expiry")
    # ten years on, action points are still there
    assert account(stubs, "stomatorg", customer, as_of=days(3650)).spendable_points == 40


def test_denco_loyalty_lasts_365_days(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "denco", customer, 70, "loyalty")
    response = account(stubs, "denco", customer)
    # T0 + 365 days = 2027-03-01 09:00 UTC
    assert when(response.next_expiry.expires_at) == datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    assert account(stubs, "denco", customer, as_of=days(365)).spendable_points == 0


def test_grant_with_future_available_at_is_pending_until_then(stubs: Stubs) -> None:
    customer = new_id("c")
    # available in 7 days; no expires_at → 90 days after available_at = 2026-06-06 09:00 UTC
    response = grant(stubs, "stomatorg", customer, 70, "loyalty", available_at=days(7))
    assert response.points == 70
    assert response.balance_after == 0  # pending points are not spendable
    now = account(stubs, "stomatorg", customer)
    assert (now.spendable_points, now.pending_points) == (0, 70)
    assert dict(now.balances_by_source) == {}
    assert not now.HasField("next_expiry")
    just_before = account(stubs, "stomatorg", customer, as_of=hours(7 * 24 - 0.001))
    assert (just_before.spendable_points, just_before.pending_points) == (0, 70)
    matured = account(stubs, "stomatorg", customer, as_of=days(7))
    assert (matured.spendable_points, matured.pending_points) == (70, 0)
    assert dict(matured.balances_by_source) == {"loyalty": 70}
    assert when(matured.next_expiry.expires_at) == datetime(2026, 6, 6, 9, 0, tzinfo=UTC)
    assert matured.next_expiry.points == 70


def test_grant_with_explicit_window(stubs: Stubs) -> None:
    customer = new_id("c")
    opens, closes = datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 20, tzinfo=UTC)
    grant(stubs, "stomatorg", customer, 30, "promo", available_at=opens, expires_at=closes)
    grant(stubs, "stomatorg", customer, 12, "promo", expires_at=closes)
    assert account(stubs, "stomatorg", customer).pending_points == 30
    inside = account(stubs, "stomatorg", customer, as_of=opens)
    assert (inside.spendable_points, inside.pending_points) == (42, 0)
    # both buckets expire at the same instant: next_expiry counts them together
    assert (when(inside.next_expiry.expires_at), inside.next_expiry.points) == (closes, 42)
    gone = account(stubs, "stomatorg", customer, as_of=closes)
    assert (gone.spendable_points, gone.pending_points) == (0, 0)


def test_ledger_lists_signed_entries_effective_by_as_of_oldest_first(stubs: Stubs) -> None:
    customer, order = new_id("c"), new_id("o")
    # written out of time order: as_of may move backwards between calls
    grant(stubs, "stomatorg", customer, 100, "promo", as_of=hours(2))  # effective T0 + 2 h
    grant(stubs, "stomatorg", customer, 40, "action")  # effective T0
    grant(stubs, "stomatorg", customer, 50, "loyalty", available_at=days(7))  # effective T0 + 7 d
    # 2 × 5,000.00 = 1,000,000 → 3 % = 300 points; spendable 140 → spend 120:
    # promo 100 (expires first), then action 20
    the_cart = cart(line("a", 2, 500_000))
    stubs.redemption.ApplyRedemption(
        apply_request("stomatorg", customer, order, the_cart, 120, as_of=hours(3)),
        timeout=TIMEOUT,
    )
    # return 1 of 2 units: floor(120 × 1 / 2) = 60 back, latest-expiring first:
    # action 20 (never expires), then promo 40
    stubs.redemption.ReverseRedemption(
        reverse_request("stomatorg", order, ("a", 1), as_of=hours(4)), timeout=TIMEOUT
    )

    def rows(at: datetime) -> list[tuple[int, int, str, str, datetime]]:
        page = ledger(stubs, "stomatorg", customer, as_of=at)
        assert page.next_page_token == ""
        return [
            (e.kind, e.points, e.source, e.order_id, when(e.effective_at)) for e in page.entries
        ]

    at_5h = [
        (GRANT, 40, "action", "", T0),
        (GRANT, 100, "promo", "", hours(2)),
        (REDEMPTION, -100, "promo", order, hours(3)),
        (REDEMPTION, -20, "action", order, hours(3)),
        (REVERSAL, 20, "action", order, hours(4)),
        (REVERSAL, 40, "promo", order, hours(4)),
    ]
    assert rows(hours(5)) == at_5h
    # the ledger sums to the spendable balance: 40 + 100 − 100 − 20 + 20 + 40 = 80
    assert sum(entry[1] for entry in at_5h) == 80
    assert account(stubs, "stomatorg", customer, as_of=hours(5)).spendable_points == 80
    # "at or before": an entry effective exactly at as_of is listed, later ones are not
    assert rows(hours(2)) == at_5h[:2]
    assert rows(hours(1)) == at_5h[:1]
    # once the pending grant matures it is listed last (effective T0 + 7 d)
    at_8d = rows(days(8))
    assert at_8d == [*at_5h, (GRANT, 50, "loyalty", "", days(7))]
    assert sum(entry[1] for entry in at_8d) == 130
    assert account(stubs, "stomatorg", customer, as_of=days(8)).spendable_points == 130


def test_ledger_pagination_is_stable_across_pages(stubs: Stubs) -> None:
    customer = new_id("c")
    for points in (1, 2, 3, 4, 5):  # all effective at T0: ties break by entry order
        grant(stubs, "stomatorg", customer, points, "action")
    for points in (6, 7):  # written later, effective a day earlier: listed first
        grant(stubs, "stomatorg", customer, points, "action", as_of=days(-1))

    def page(token: str) -> a.ListLedgerEntriesResponse:
        return ledger(stubs, "stomatorg", customer, as_of=T0, page_size=3, page_token=token)

    first = page("")
    assert [e.points for e in first.entries] == [6, 7, 1]
    assert first.next_page_token
    # the same token gives the same page
    second = page(first.next_page_token)
    assert second == page(first.next_page_token)
    assert [e.points for e in second.entries] == [2, 3, 4]
    # entries written while paging (docs/rules.md §7) are left to the next walk, whether effective
    # later (T0, newest) or earlier (a day before, before the walk's position)
    grant(stubs, "stomatorg", customer, 8, "action")
    grant(stubs, "stomatorg", customer, 9, "action", as_of=days(-1))
    third = page(second.next_page_token)
    assert [e.points for e in third.entries] == [5]
    assert third.next_page_token == ""
    paged = [*first.entries, *second.entries, *third.entries]
    assert len({e.entry_id for e in paged}) == 7
    # the next walk has them: 9 with the day-earlier ones, 8 last
    whole = ledger(stubs, "stomatorg", customer, as_of=T0, page_size=100)
    assert whole.next_page_token == ""
    assert [e.points for e in whole.entries] == [6, 7, 9, 1, 2, 3, 4, 5, 8]
    paged = list(whole.entries)
    assert all(e.kind == GRANT and e.source == "action" for e in paged)
    # 6 + 7 + 9 + 1 + 2 + 3 + 4 + 5 + 8 = 45 = spendable
    assert sum(e.points for e in paged) == 45
    assert account(stubs, "stomatorg", customer).spendable_points == 45


def test_ledger_page_of_exactly_the_rest_has_no_token(stubs: Stubs) -> None:
    customer = new_id("c")
    for points in (1, 2, 3, 4):
        grant(stubs, "stomatorg", customer, points, "action")
    first = ledger(stubs, "stomatorg", customer, as_of=T0, page_size=2)
    second = ledger(
        stubs, "stomatorg", customer, as_of=T0, page_size=2, page_token=first.next_page_token
    )
    assert [e.points for e in second.entries] == [3, 4]
    assert second.next_page_token == ""


def test_grant_reason_is_recorded(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 5, "action", reason="review written")
    (entry,) = ledger(stubs, "stomatorg", customer, as_of=T0).entries
    assert entry.reason == "review written"
    assert entry.entry_id
    assert when(entry.recorded_at) == T0
