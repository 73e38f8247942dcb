"""A ListLedgerEntries walk while backdated entries are written (docs/rules.md §7; issue 13), on
both backends.

An account starts with 40 entries: grants of `action` points (never expiring) effective
at instants spread over ten days before T. One thread walks its ledger three entries a
page at T; another keeps granting meanwhile, each grant available (so effective) earlier
than anything the walk has delivered yet or at T itself: backdated entries land behind the
walk's position, current ones ahead of it. The writer runs from the moment the first page
is read until the walk ends, and the walk waits for at least one new entry between pages,
so every page is read with entries written since the last one.

The walk must deliver every entry that existed when its first page was read exactly once,
in (effective_at, entry_id) order, and nothing written after: those appear in the next walk.
"""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from loyalty.v1 import account_service_pb2 as a
from tests.integration.common import PROGRAM, RPC_TIMEOUT, Ids, grant_request, ts
from tests.support.server import Stubs

pytestmark = pytest.mark.timeout(300)

T = datetime(2034, 3, 1, 12, 0, tzinfo=UTC)
STARTING = 40
PAGE = 3
DEADLINE = 60.0  # seconds the walk waits for the writer's next entry before failing


def _grant(stubs: Stubs, ids: Ids, n: object, *, available_at: datetime) -> None:
    request = grant_request(ids, points=1, as_of=T, n=n, source="action")
    request.available_at.CopyFrom(ts(available_at))
    stubs.account.GrantPoints(request, timeout=RPC_TIMEOUT)


def _page(stubs: Stubs, ids: Ids, token: str) -> a.ListLedgerEntriesResponse:
    request = a.ListLedgerEntriesRequest(
        program_id=PROGRAM, customer_id=ids.customer, page_size=PAGE, page_token=token, as_of=ts(T)
    )
    return stubs.account.ListLedgerEntries(request, timeout=RPC_TIMEOUT)


def _whole(stubs: Stubs, ids: Ids) -> list[a.LedgerEntry]:
    request = a.ListLedgerEntriesRequest(
        program_id=PROGRAM, customer_id=ids.customer, page_size=1_000, as_of=ts(T)
    )
    answer = stubs.account.ListLedgerEntries(request, timeout=RPC_TIMEOUT)
    assert answer.next_page_token == ""
    return list(answer.entries)


def _key(entry: a.LedgerEntry) -> tuple[datetime, int]:
    return entry.effective_at.ToDatetime(tzinfo=UTC), int(entry.entry_id)


def test_a_walk_delivers_what_existed_at_its_start_exactly_once(stubs: Stubs) -> None:
    ids = Ids("paging")
    for i in range(STARTING):  # 6 h apart over the ten days before T, newest last
        _grant(stubs, ids, f"start-{i}", available_at=T - timedelta(hours=6 * (STARTING - i)))
    existing = _whole(stubs, ids)
    assert len(existing) == STARTING

    written = threading.Semaphore(0)  # one release per entry the writer wrote
    walking, done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            walking.wait(timeout=DEADLINE)
            n = 0
            while not done.is_set():
                # alternately far behind (before every starting entry) and at T (ahead)
                when = T - timedelta(days=30, seconds=n) if n % 2 == 0 else T
                _grant(stubs, ids, f"meanwhile-{n}", available_at=when)
                n += 1
                written.release()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    delivered: list[a.LedgerEntry] = []
    try:
        token = ""
        while True:
            page = _page(stubs, ids, token)
            walking.set()
            delivered += page.entries
            token = page.next_page_token
            if not token:
                break
            assert written.acquire(timeout=DEADLINE), "the writer wrote nothing in time"
    finally:
        done.set()
        thread.join(timeout=DEADLINE)
    assert not failures, failures

    # every starting entry once, in (effective_at, entry_id) order, and nothing else
    assert [e.entry_id for e in delivered] == [e.entry_id for e in existing]
    assert [_key(e) for e in delivered] == sorted(_key(e) for e in existing)
    # the entries written meanwhile (at least one per page after the first) are in the
    # next walk, and the backdated ones come first in it
    after = _whole(stubs, ids)
    new = [e for e in after if e.entry_id not in {x.entry_id for x in existing}]
    assert len(new) >= STARTING // PAGE
    assert [_key(e) for e in after] == sorted(_key(e) for e in after)
    assert after[0].entry_id in {e.entry_id for e in new}
