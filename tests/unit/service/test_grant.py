"""GrantPoints on fakes: a credit pays the debt first."""

from datetime import timedelta

from tests.unit.service.fakes import NOW
from tests.unit.service.support import Calls, P


def test_a_grant_is_spendable_now_and_expires_per_source() -> None:
    calls = Calls()
    result = calls.grant("alice", 500)
    assert (result.points, result.balance_after, result.debt_points) == (500, 500, 0)
    (bucket,) = calls.store.state.buckets.values()
    assert bucket.expires_at == NOW + timedelta(days=90)  # loyalty: 90 days
    assert calls.ledger("alice") == [("GRANT", 500)]


def test_a_grant_pays_the_debt_first() -> None:
    calls = Calls()
    calls.store.state.debts[(P, "alice")] = 120
    result = calls.grant("alice", 500)
    # 120 pay the debt, 380 stay in the bucket
    assert (result.balance_after, result.debt_points) == (380, 0)
    assert calls.store.state.debts[(P, "alice")] == 0
    (bucket,) = calls.store.state.buckets.values()
    assert bucket.remaining == 380
