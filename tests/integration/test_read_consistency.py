"""Reads in one snapshot on PostgreSQL (docs/rules.md §7: "GetAccount never counts a point as both
held and spendable"; issue 13).

One account owns 1,000 `action` points (never expiring) and spends nothing. A writer keeps
one or two holds of 300 on it: it holds order k, then releases order k − 1, over and over.
Readers call GetAccount meanwhile, thousands of times. Whatever moment a read sees, the
points are either spendable or held, never both and never neither: spendable + held is
exactly 1,000 in every answer (the spec's bound is "never more"; a snapshot gives equality).

Before the fix, GetAccount read the buckets and then the holds in two statements outside a
transaction: a hold placed between them was counted twice (1,000 − 300 + 600 = 1,300), a
release between them not at all (700).
"""

import threading
from collections import Counter
from datetime import UTC, datetime

import pytest

from loyalty.v1 import redemption_pb2
from tests.integration.common import (
    RPC_TIMEOUT,
    Ids,
    account_request,
    apply_request,
    cart,
    grant_request,
    reverse_request,
)
from tests.support.server import Stubs

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

OWNED, HELD = 1_000, 300
READS, HOLDS = 3_000, 100  # at least this many reads, while at least this many holds come and go
READERS = 3
BASKET = cart(("line-1", 1, 2_000_000))  # 3 % of 2,000,000 minor = 600 points ≥ 300
AT = datetime(2033, 7, 1, 12, 0, tzinfo=UTC)  # every call at this instant: no hold lapses


@pytest.fixture(scope="module")
def backend() -> str:
    return "postgres"


def test_get_account_never_counts_a_point_twice_or_not_at_all(stubs: Stubs) -> None:
    ids = Ids("consistent-read")
    stubs.account.GrantPoints(
        grant_request(ids, points=OWNED, as_of=AT, source="action"), timeout=RPC_TIMEOUT
    )
    stop = threading.Event()
    holds_done = Counter[str]()
    seen: Counter[tuple[int, int]] = Counter()
    lock = threading.Lock()
    failures: list[BaseException] = []

    def writer() -> None:
        k = 0
        while not stop.is_set():
            request = apply_request(
                ids, order=k, request=f"hold-{k}", basket=BASKET, points=HELD, as_of=AT
            )
            request.hold_seconds = 3_600
            held = stubs.redemption.ApplyRedemption(request, timeout=RPC_TIMEOUT)
            assert held.redemption.state == redemption_pb2.REDEMPTION_STATE_HELD
            if k:
                stubs.redemption.ReverseRedemption(
                    reverse_request(ids, order=k - 1, request=f"release-{k - 1}", lines=[],
                                    as_of=AT),
                    timeout=RPC_TIMEOUT,
                )  # fmt: skip
            k += 1
            with lock:
                holds_done["holds"] = k

    def reader() -> None:
        while not stop.is_set():
            account = stubs.account.GetAccount(account_request(ids, as_of=AT), timeout=RPC_TIMEOUT)
            with lock:
                seen[(account.spendable_points, account.held_points)] += 1
                if seen.total() >= READS and holds_done["holds"] >= HOLDS:
                    stop.set()

    def guarded(work: object) -> None:
        try:
            work()  # type: ignore[operator]
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    threads = [threading.Thread(target=guarded, args=(writer,))] + [
        threading.Thread(target=guarded, args=(reader,)) for _ in range(READERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=540)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    print(f"{seen.total()} reads over {holds_done['holds']} holds: {dict(seen)}")
    assert seen.total() >= READS
    wrong = {pair: n for pair, n in seen.items() if sum(pair) != OWNED}
    assert wrong == {}, f"reads where spendable + held ≠ {OWNED}: {wrong}"
