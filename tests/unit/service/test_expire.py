"""The expiry job on fakes: each due account under its lock, EXPIRY entries at the expiry."""

from datetime import timedelta

from server.service.expire import expire_points
from tests.unit.service.fakes import NOW
from tests.unit.service.support import Calls, P


def test_expired_points_are_written_off_once() -> None:
    calls = Calls()
    calls.grant("alice", 500)  # loyalty points expire 90 days later
    calls.grant("bob", 200)
    calls.apply("alice", "o1", 300)
    expiry = NOW + timedelta(days=90)
    assert expire_points(calls.store, now=expiry - timedelta(seconds=1)).points == 0
    report = expire_points(calls.store, now=expiry, batch=1)
    # alice: 500 − 300 = 200 left; bob: 200 — both at the expiry instant
    assert (report.accounts, report.points) == (2, 400)
    assert calls.ledger("alice")[-1] == ("EXPIRY", -200)
    assert calls.ledger("bob")[-1] == ("EXPIRY", -200)
    (_, _, entry) = calls.store.state.ledger[-1]
    assert entry.effective_at == expiry
    assert calls.store.state.locked[-2:] == [(P, "alice"), (P, "bob")]
    assert expire_points(calls.store, now=expiry).points == 0  # nothing left behind
