"""The reads on fakes: QuoteRedemption, GetAccount, GetRedemption, ListLedgerEntries."""

from datetime import timedelta

import pytest

from pricing.errors import OrderNotFound
from pricing.order import RedemptionState
from server.service import commands
from server.service.quote import quote_redemption
from server.service.reads import get_account, get_redemption, list_ledger_entries
from tests.unit.service.fakes import NOW
from tests.unit.service.support import Calls, P, drills


def test_quote() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    quote = quote_redemption(
        calls.deps, commands.QuoteRedemption(P, "alice", drills(), ""), now=NOW
    )
    # 3 % of 1,000,000 kopecks = 30,000 = 300 points, of 500 spendable
    assert (quote.spendable_points, quote.options[quote.recommended].max_points) == (500, 300)


def test_account() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 100, hold_seconds=600)
    account = get_account(calls.deps, program_id=P, customer_id="alice", now=NOW)
    assert (account.spendable_points, account.held_points, account.debt_points) == (400, 100, 0)


def test_redemption_is_the_latest_attempt_as_seen_now() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300, hold_seconds=600)
    calls.reverse("o1")
    calls.apply("alice", "o1", 100, hold_seconds=600)
    seen = get_redemption(calls.deps, program_id=P, order_id="o1", now=NOW)
    assert (seen.attempt, seen.points, seen.state) == (2, 100, RedemptionState.HELD)
    # the hold lapses at its deadline, whether or not that is written down yet
    lapsed = get_redemption(
        calls.deps, program_id=P, order_id="o1", now=NOW + timedelta(minutes=10)
    )
    assert lapsed.state is RedemptionState.EXPIRED
    with pytest.raises(OrderNotFound):
        get_redemption(calls.deps, program_id=P, order_id="nobody", now=NOW)


def test_ledger_pages() -> None:
    calls = Calls()
    calls.grant("alice", 500)
    calls.apply("alice", "o1", 300)
    first = list_ledger_entries(
        calls.deps, commands.LedgerPageRequest(P, "alice", 1, None, 0), now=NOW
    )
    assert ([(e.kind, e.points) for e in first.entries], first.has_more) == ([("GRANT", 500)], True)
    last = first.entries[-1]
    rest = list_ledger_entries(
        calls.deps,
        commands.LedgerPageRequest(P, "alice", 10, last.effective_at, last.entry_id),
        now=NOW,
    )
    assert ([(e.kind, e.points) for e in rest.entries], rest.has_more) == (
        [("REDEMPTION", -300)],
        False,
    )
