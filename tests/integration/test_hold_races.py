"""Races on a hold, on PostgreSQL over a real server (docs/rules.md §7, §8; issue 5).

Each race is repeated over rounds, each on a fresh customer and order: the customer is
granted 500 `action` points (never expiring) and holds 300 of them on one order (program
`stomatorg`, base tier: the 20,000 ₽ basket may take 3 % = 600 points, more than 300).
Then:

* capture racing the lapse — a capture at `deadline − 1 s`, another at `deadline + 1 s`
  and the expiry job process at `deadline`, queued at the account's lock in each of the
  six orders in turn (the test holds the lock until all three wait for it, so the order
  is the test's, not the machine's timing);

released together by a thread barrier:

* capture racing release — CaptureRedemption and ReverseRedemption without lines;
* release racing release — two releases under different request ids, and a duplicate of
  the first (same request id).

Every round must end in exactly one final state, written to the database, that agrees
with what each caller was told; the customer's spendable + held points are exactly what
that state implies (nothing lost, nothing doubled), the ledger holds exactly the entries
it implies, and the ledger invariants hold over the whole database afterwards.
"""

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from loyalty.v1 import redemption_pb2
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from server.store.schema import ledger_entries, redemptions
from tests.integration.common import (
    PROGRAM,
    RPC_TIMEOUT,
    Ids,
    Outcome,
    account_request,
    apply_request,
    cart,
    failure,
    fetch,
    fire_together,
    grant_request,
    queued_at_the_lock,
    reverse_request,
    ts,
)
from tests.integration.conftest import InvariantWatch
from tests.support.server import ServerProcess, Stubs, run_expiry_job

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

ROUNDS = 10
LOCK_WAIT = 90  # seconds a call may wait for the account lock here (and its deadline)
GRANTED, HELD = 500, 300
BASKET = cart(("line-1", 1, 2_000_000))  # base 2,000,000 minor: 3 % = 600 points ≥ 300
SECOND = timedelta(seconds=1)
HOLD_EXPIRED = (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_EXPIRED")
HOLD_RELEASED = (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_RELEASED")
# Each race lives in its own stretch of time, one day per round, so that the expiry job of
# one round (which writes down every lapse in the database up to its instant) never
# reaches a hold of a later round or of another race.
LAPSE_RACE = datetime(2032, 1, 1, 8, 0, tzinfo=UTC)
CAPTURE_RACE = datetime(2032, 3, 1, 8, 0, tzinfo=UTC)
RELEASE_RACE = datetime(2032, 5, 1, 8, 0, tzinfo=UTC)
LAST = datetime(2032, 12, 31, tzinfo=UTC)  # after every round of every race

Entry = tuple[str, int, str, datetime]  # kind, points, order_id, effective_at


@pytest.fixture(scope="module")
def backend() -> str:
    return "postgres"  # row locks and concurrent transactions: the production backend


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server, with a lock timeout longer than the job process takes to reach the lock
    (a capture queued before it waits that long)."""
    process = ServerProcess(
        db_url,
        log_path=tmp_path_factory.mktemp("server") / "server.log",
        extra_args=("--db-lock-timeout", str(LOCK_WAIT)),
    ).start()
    yield process
    process.stop()


# ---- helpers -----------------------------------------------------------------------


def _hold(stubs: Stubs, ids: Ids, *, at: datetime, seconds: int) -> redemption_pb2.Redemption:
    stubs.account.GrantPoints(
        grant_request(ids, points=GRANTED, as_of=at, source="action"), timeout=RPC_TIMEOUT
    )
    request = apply_request(ids, order=0, request="hold", basket=BASKET, points=HELD, as_of=at)
    request.hold_seconds = seconds
    held = stubs.redemption.ApplyRedemption(request, timeout=RPC_TIMEOUT)
    assert held.redemption.state == redemption_pb2.REDEMPTION_STATE_HELD
    assert held.balance_after == GRANTED - HELD
    return held.redemption


def _capture(stubs: Stubs, ids: Ids, *, at: datetime, request: str) -> redemption_pb2.Redemption:
    return stubs.redemption.CaptureRedemption(
        redemption_pb.CaptureRedemptionRequest(
            request_id=ids.request(request),
            program_id=PROGRAM,
            order_id=ids.order(0),
            as_of=ts(at),
        ),
        timeout=LOCK_WAIT,
    ).redemption


def _release(
    stubs: Stubs, ids: Ids, *, at: datetime, request: str
) -> redemption_pb.ReverseRedemptionResponse:
    return stubs.redemption.ReverseRedemption(
        reverse_request(ids, order=0, request=request, lines=[], as_of=at), timeout=RPC_TIMEOUT
    )


def _state_name(value: int) -> str:
    return redemption_pb2.RedemptionState.Name(value).removeprefix("REDEMPTION_STATE_")


def _stored_state(db_url: str, ids: Ids) -> str:
    """The state written in the database (not as a read would see it at some instant)."""
    rows = fetch(db_url, select(redemptions.c.state).where(redemptions.c.order_id == ids.order(0)))
    assert len(rows) == 1, rows
    return str(rows[0].state)


def _points(stubs: Stubs, ids: Ids, *, at: datetime) -> tuple[int, int]:
    seen = stubs.account.GetAccount(account_request(ids, as_of=at), timeout=RPC_TIMEOUT)
    assert seen.debt_points == 0
    return seen.spendable_points, seen.held_points


def _ledger(db_url: str, ids: Ids) -> list[Entry]:
    e = ledger_entries.c
    rows = fetch(
        db_url,
        select(e.kind, e.points, e.order_id, e.effective_at)
        .where(e.program_id == PROGRAM, e.customer_id == ids.customer)
        .order_by(e.entry_id),
    )
    return sorted((r.kind, r.points, r.order_id or "", r.effective_at) for r in rows)


def _failed(outcome: Outcome[Any], expected: tuple[grpc.StatusCode, str]) -> bool:
    return outcome.error is not None and failure(outcome.error) == expected


def _describe(outcomes: list[Outcome[Any]]) -> list[str]:
    return [
        "ok" if o.error is None else f"{failure(o.error)[0].name} {failure(o.error)[1]}"
        for o in outcomes
    ]


# ---- capture racing the lapse ------------------------------------------------------


def _lapse_round(stubs: Stubs, db_url: str, n: int, *, order: tuple[str, ...]) -> str:
    """One round: the capture at deadline − 1 s ("early"), the one at deadline + 1 s
    ("late") and the expiry job ("job") take the account's lock in `order`.

    Returns the final state."""
    ids = Ids(f"lapse-{n}")
    t0 = LAPSE_RACE + timedelta(days=n)
    deadline = t0 + timedelta(seconds=60)
    held = _hold(stubs, ids, at=t0, seconds=60)
    calls: dict[str, Callable[[], Any]] = {
        "early": partial(_capture, stubs, ids, at=deadline - SECOND, request="c1"),
        "late": partial(_capture, stubs, ids, at=deadline + SECOND, request="c2"),
        "job": partial(run_expiry_job, db_url, deadline),
    }
    outcomes = dict(zip(order, queued_at_the_lock(db_url, [calls[c] for c in order]), strict=True))
    before, after, job = outcomes["early"], outcomes["late"], outcomes["job"]
    assert job.ok, job
    final = _stored_state(db_url, ids)
    answers = _describe([before, after])
    grant_and_hold = [
        ("GRANT", GRANTED, "", t0),
        ("HOLD", -HELD, ids.order(0), t0),
    ]
    # The early capture captures if it gets the lock before the job writes the lapse.
    # The late one never can (at its `as_of` the hold has lapsed) and writes nothing when
    # refused: its lapse rolls back with the refusal.
    assert final == ("APPLIED" if _first(order, "early", "job") else "EXPIRED"), (order, answers)
    if final == "APPLIED":
        # The late call came after and was answered the captured redemption as it is, or
        # came first and was refused.
        assert before.value is not None, answers
        assert before.value.state == redemption_pb2.REDEMPTION_STATE_APPLIED
        assert before.value.points == HELD
        assert before.value.redemption_id == held.redemption_id
        if _first(order, "early", "late"):
            assert after.value == before.value, answers
        else:
            assert _failed(after, HOLD_EXPIRED), answers
        spendable, ledger = GRANTED - HELD, grant_and_hold
    else:
        # The job wrote the lapse first: both captures are refused, and exactly one
        # RELEASE of the 300 is written, effective at the deadline.
        assert final == "EXPIRED", (final, answers)
        assert _failed(before, HOLD_EXPIRED), answers
        assert _failed(after, HOLD_EXPIRED), answers
        spendable = GRANTED
        ledger = [*grant_and_hold, ("RELEASE", HELD, ids.order(0), deadline)]
    later = deadline + timedelta(hours=1)
    assert _points(stubs, ids, at=later) == (spendable, 0), (final, answers)
    assert _ledger(db_url, ids) == sorted(ledger), (final, answers)
    seen = stubs.redemption.GetRedemption(
        redemption_pb.GetRedemptionRequest(
            program_id=PROGRAM, order_id=ids.order(0), as_of=ts(deadline)
        ),
        timeout=RPC_TIMEOUT,
    ).redemption
    # at the deadline (a read before it sees the hold as it was then: docs/rules.md §7)
    assert _state_name(seen.state) == final
    # Whoever comes next is told the same: capture succeeds iff the hold was captured.
    if final == "APPLIED":
        assert _capture(stubs, ids, at=later, request="c3") == before.value
    else:
        with pytest.raises(grpc.RpcError) as refused:
            _capture(stubs, ids, at=deadline - SECOND, request="c3")
        assert failure(refused.value) == HOLD_EXPIRED
    return final


def _first(order: tuple[str, ...], one: str, other: str) -> bool:
    return order.index(one) < order.index(other)


def test_capture_racing_the_lapse_ends_applied_or_expired(
    stubs: Stubs, db_url: str, invariants: InvariantWatch
) -> None:
    # Every order in which the two captures and the job can take the account's lock.
    orders = list(itertools.permutations(("early", "late", "job")))
    finals = Counter(_lapse_round(stubs, db_url, n, order=o) for n, o in enumerate(orders))
    # early before the job: (early, late, job), (early, job, late), (late, early, job)
    assert finals == {"APPLIED": 3, "EXPIRED": 3}
    invariants.at(db_url, LAST)


# ---- capture racing release --------------------------------------------------------


def test_capture_racing_release_ends_released_or_captured_and_reversed(
    stubs: Stubs, db_url: str, invariants: InvariantWatch
) -> None:
    finals: Counter[str] = Counter()
    for n in range(ROUNDS):
        ids = Ids(f"capture-release-{n}")
        t0 = CAPTURE_RACE + timedelta(days=n)
        at = t0 + timedelta(minutes=1)
        _hold(stubs, ids, at=t0, seconds=3600)
        captured, released = fire_together(
            [
                partial(_capture, stubs, ids, at=at, request="capture"),
                partial(_release, stubs, ids, at=at, request="release"),
            ]
        )
        assert released.value is not None, _describe([released])
        answers = _describe([captured, released])
        final = _stored_state(db_url, ids)
        finals[final] += 1
        # Either way the release gives back all 300: as a release of the hold, or — the
        # capture having come first — as the reversal of everything the order spent.
        assert released.value.points_returned == HELD, answers
        assert released.value.balance_after == GRANTED, answers
        assert _state_name(released.value.redemption.state) == final
        if final == "RELEASED":
            assert _failed(captured, HOLD_RELEASED), answers
            back: Entry = ("RELEASE", HELD, ids.order(0), at)
            assert released.value.redemption.points_reversed == 0
        else:
            assert final == "REVERSED", (final, answers)
            assert captured.value is not None, answers
            assert captured.value.state == redemption_pb2.REDEMPTION_STATE_APPLIED
            back = ("REVERSAL", HELD, ids.order(0), at)
            assert released.value.redemption.points_reversed == HELD
        assert _points(stubs, ids, at=at) == (GRANTED, 0), (final, answers)
        assert _points(stubs, ids, at=t0 + timedelta(hours=2)) == (GRANTED, 0)
        assert _ledger(db_url, ids) == sorted(
            [("GRANT", GRANTED, "", t0), ("HOLD", -HELD, ids.order(0), t0), back]
        ), (final, answers)
    print(f"capture vs release: {dict(finals)}")
    invariants.at(db_url, LAST)


# ---- release racing release --------------------------------------------------------


def test_release_racing_release_gives_the_points_back_once(
    stubs: Stubs, db_url: str, invariants: InvariantWatch
) -> None:
    for n in range(ROUNDS):
        ids = Ids(f"release-release-{n}")
        t0 = RELEASE_RACE + timedelta(days=n)
        at = t0 + timedelta(minutes=1)
        _hold(stubs, ids, at=t0, seconds=3600)
        first, duplicate, second = fire_together(
            [
                partial(_release, stubs, ids, at=at, request="release-1"),
                partial(_release, stubs, ids, at=at, request="release-1"),
                partial(_release, stubs, ids, at=at, request="release-2"),
            ]
        )
        answers = _describe([first, duplicate, second])
        assert first.value is not None and duplicate.value is not None, answers
        assert second.value is not None, answers
        # One request id, one effect, one answer.
        assert duplicate.value == first.value
        # Exactly one of the two releases gave the 300 back; the other found nothing.
        assert sorted([first.value.points_returned, second.value.points_returned]) == [0, HELD]
        for answer in (first.value, second.value):
            assert _state_name(answer.redemption.state) == "RELEASED"
            assert answer.balance_after == GRANTED
            assert answer.redemption.points_reversed == 0
        assert _stored_state(db_url, ids) == "RELEASED"
        assert _points(stubs, ids, at=at) == (GRANTED, 0)
        assert _points(stubs, ids, at=t0 + timedelta(hours=2)) == (GRANTED, 0)
        assert _ledger(db_url, ids) == sorted(
            [
                ("GRANT", GRANTED, "", t0),
                ("HOLD", -HELD, ids.order(0), t0),
                ("RELEASE", HELD, ids.order(0), at),
            ]
        )
    invariants.at(db_url, LAST)
