"""Races on a hold, on PostgreSQL over a real server (docs/rules.md §7, §8; issue 5).

Each race is repeated for ROUNDS rounds (the lapse race adds up to three when machine
load kept one of its endings from happening), each on a fresh customer and order: the
customer is granted 500 `action` points (never expiring) and holds 300 of them on one
order (program `stomatorg`, base tier: the 20,000 ₽ basket may take 3 % = 600 points,
more than 300). Then, released together by a thread barrier:

* capture racing the lapse — a capture at `deadline − 1 s`, another at `deadline + 1 s`
  and the expiry job process at `deadline`;
* capture racing release — CaptureRedemption and ReverseRedemption without lines;
* release racing release — two releases under different request ids, and a duplicate of
  the first (same request id).

Every round must end in exactly one final state, written to the database, that agrees
with what each caller was told; the customer's spendable + held points are exactly what
that state implies (nothing lost, nothing doubled), the ledger holds exactly the entries
it implies, and the ledger invariants hold over the whole database afterwards.
"""

import time
from collections import Counter
from collections.abc import Callable
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
    reverse_request,
    ts,
)
from tests.integration.conftest import InvariantWatch
from tests.support.server import Stubs, run_expiry_job

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(150)]

ROUNDS = 10
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
        timeout=RPC_TIMEOUT,
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


def _after(delay: float, call: Callable[[], Any]) -> Callable[[], Any]:
    def delayed() -> Any:
        time.sleep(delay)
        return call()

    return delayed


# ---- capture racing the lapse ------------------------------------------------------


def _lapse_round(stubs: Stubs, db_url: str, n: int, *, delay: float) -> tuple[str, bool]:
    """One round: captures at deadline ∓ 1 s, `delay` seconds after the job process starts.

    Returns the final state and whether the late capture was refused before the early one
    captured."""
    ids = Ids(f"lapse-{n}")
    t0 = LAPSE_RACE + timedelta(days=n)
    deadline = t0 + timedelta(seconds=60)
    held = _hold(stubs, ids, at=t0, seconds=60)
    before, after, job = fire_together(
        [
            _after(delay, partial(_capture, stubs, ids, at=deadline - SECOND, request="c1")),
            _after(delay, partial(_capture, stubs, ids, at=deadline + SECOND, request="c2")),
            partial(run_expiry_job, db_url, deadline),
        ]
    )
    assert job.ok, job
    final = _stored_state(db_url, ids)
    answers = _describe([before, after])
    grant_and_hold = [
        ("GRANT", GRANTED, "", t0),
        ("HOLD", -HELD, ids.order(0), t0),
    ]
    late_refused = False
    if final == "APPLIED":
        # Captured by the call one second before the deadline (the one after it can never
        # capture: at its `as_of` the hold has lapsed). The later call either came after
        # and was answered the captured redemption as it is, or came first and was
        # refused — at its instant the hold had lapsed — writing nothing.
        assert before.value is not None, answers
        assert before.value.state == redemption_pb2.REDEMPTION_STATE_APPLIED
        assert before.value.points == HELD
        assert before.value.redemption_id == held.redemption_id
        if after.value is not None:
            assert after.value == before.value, answers
        else:
            assert _failed(after, HOLD_EXPIRED), answers
            late_refused = True
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
            program_id=PROGRAM, order_id=ids.order(0), as_of=ts(deadline - SECOND)
        ),
        timeout=RPC_TIMEOUT,
    ).redemption
    assert _state_name(seen.state) == final
    # Whoever comes next is told the same: capture succeeds iff the hold was captured.
    if final == "APPLIED":
        assert _capture(stubs, ids, at=later, request="c3") == before.value
    else:
        with pytest.raises(grpc.RpcError) as refused:
            _capture(stubs, ids, at=deadline - SECOND, request="c3")
        assert failure(refused.value) == HOLD_EXPIRED
    return final, late_refused


def test_capture_racing_the_lapse_ends_applied_or_expired(
    stubs: Stubs, db_url: str, invariants: InvariantWatch
) -> None:
    # The job is a process: most of its run is start-up before it takes the account lock.
    # Sweep the captures' start across that run (from well before the job reaches the lock
    # to about when it ends), so that rounds see the captures first, the job first, and the
    # two meeting at the lock.
    started = time.monotonic()
    run_expiry_job(db_url, LAPSE_RACE - timedelta(days=1))
    job_seconds = time.monotonic() - started
    factors = [0.2 + 0.9 * n / (ROUNDS - 1) for n in range(ROUNDS)]
    finals: Counter[str] = Counter()
    late_refused_then_captured = 0
    for n, factor in enumerate(factors):
        final, late_refused = _lapse_round(stubs, db_url, n, delay=job_seconds * factor)
        finals[final] += 1
        late_refused_then_captured += late_refused
    # Load can make the job slower or faster than calibrated; if one ending never came,
    # push the captures further out (or in) for a few more rounds.
    for n, factor in enumerate([1.5, 2.5, 4.0, 0.0, 0.0], start=ROUNDS):
        if set(finals) == {"APPLIED", "EXPIRED"}:
            break
        if (factor > 0) == ("EXPIRED" in finals):
            continue
        final, late_refused = _lapse_round(stubs, db_url, n, delay=job_seconds * factor)
        finals[final] += 1
        late_refused_then_captured += late_refused

    # Both endings happened: the sweep really put the captures on both sides of the job.
    assert set(finals) == {"APPLIED", "EXPIRED"}, (finals, job_seconds)
    print(
        f"capture vs lapse: {dict(finals)}; job {job_seconds:.2f} s; the late capture refused"
        f" before the early one captured in {late_refused_then_captured} rounds"
    )
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
