"""The seam's protocols (server/service/ports.py) in memory, for use-case unit tests.

One `FakeStore` is the whole "database": accounts (buckets, debt), orders, the ledger and
the answers stored per request id. A unit of work that raises leaves it as it was (the
transaction rolls back). Holds lapse only when a test says so: lapses under the lock are
the database side's job (`locked_state`), tested on real databases.
"""

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pricing.accrual import Accrual
from pricing.buckets import Bucket, Debit, Expired, Settlement
from pricing.holds import Hold, Release, release
from pricing.ledger import LedgerEntry
from pricing.order import Order, Redemption, RedemptionState, ReturnPlan, returned_accrual
from pricing.program import Program, Tier, load_programs
from pricing.tiers import TierStatus, tier_status
from server.service.account_state import AccountState
from server.service.commands import Idempotency
from server.service.deps import Deps
from server.service.errors import IdempotencyKeyReused
from server.service.ports import NewBucket, Outcome, Placement, Request
from server.store.errors import DuplicateAccrual, DuplicateOrder, DuplicateRedemption

R = TypeVar("R")
T = TypeVar("T")
PROGRAMS = load_programs(Path(__file__).resolve().parents[3] / "programs")
NOW = datetime(2026, 7, 1, 12, tzinfo=UTC)


@dataclass
class State:
    """Everything the fake stores."""

    buckets: dict[int, Bucket] = field(default_factory=dict)
    owners: dict[int, tuple[str, str]] = field(default_factory=dict)  # bucket → account
    written_off: dict[int, int] = field(default_factory=dict)
    debts: dict[tuple[str, str], int] = field(default_factory=dict)
    orders: dict[tuple[str, str], Order] = field(default_factory=dict)
    ledger: list[tuple[str, str, LedgerEntry]] = field(default_factory=list)
    answers: dict[tuple[str, str], tuple[str, bytes, bytes]] = field(default_factory=dict)
    locked: list[tuple[str, str]] = field(default_factory=list)  # accounts locked, in order


class FakeAccounts:
    def __init__(self, state: State) -> None:
        self.s = state

    def _state(
        self, program_id: str, customer_id: str, now: datetime, order_id: str
    ) -> AccountState:
        account = (program_id, customer_id)
        mine = sorted(
            (b for i, b in self.s.buckets.items() if self.s.owners[i] == account),
            key=lambda b: b.seq,
        )
        holds = [
            Hold(r.redemption_id, r.order_id, r.points, r.hold_expires_at, r.debits)
            for o in self.s.orders.values()
            if o.customer_id == customer_id and o.program_id == program_id
            for r in o.attempts
            if r.state is RedemptionState.HELD and r.hold_expires_at is not None
        ]
        order = self.s.orders.get((program_id, order_id))
        return AccountState(
            program_id, customer_id, mine, self.s.debts.get(account, 0), holds, now,
            order=order.head if order else None,
        )  # fmt: skip

    def lock(
        self, *, program_id: str, customer_id: str, now: datetime, order_id: str = ""
    ) -> AccountState:
        self.s.locked.append((program_id, customer_id))
        self.s.debts.setdefault((program_id, customer_id), 0)
        return self._state(program_id, customer_id, now, order_id)

    def read(self, *, program_id: str, customer_id: str, now: datetime) -> AccountState:
        return self._state(program_id, customer_id, now, "")

    def set_debt(self, *, program_id: str, customer_id: str, debt_points: int) -> None:
        assert debt_points >= 0
        self.s.debts[(program_id, customer_id)] = debt_points

    def release(
        self,
        hold: Hold,
        *,
        program_id: str,
        customer_id: str,
        at: datetime,
        now: datetime,
        request_id: str | None,
        debt: int,
        reason: str = "",
    ) -> Release:
        released = release(hold, at=at, debt=debt)
        self.give_back(released.to_buckets)
        self.set_debt(
            program_id=program_id, customer_id=customer_id, debt_points=debt - released.to_debt
        )
        key = (program_id, hold.order_id)
        order = self.s.orders[key]
        self.s.orders[key] = replace(
            order,
            attempts=tuple(
                r.moved_to(RedemptionState.RELEASED) if r.redemption_id == hold.redemption_id else r
                for r in order.attempts
            ),
        )
        for d in released.returned:
            entry = LedgerEntry(
                "RELEASE",
                d.points,
                self.s.buckets[d.bucket_id].source,
                at,
                d.bucket_id,
                hold.order_id,
                reason,
            )
            self.s.ledger.append((program_id, customer_id, entry))
        return released

    def add_bucket(self, bucket: NewBucket, *, now: datetime) -> int:
        bucket_id = len(self.s.buckets) + 1
        self.s.buckets[bucket_id] = Bucket(
            bucket_id, bucket.source, bucket.remaining, bucket.available_at, bucket.expires_at,
            bucket_id, bucket.settled,
        )  # fmt: skip
        self.s.owners[bucket_id] = (bucket.program_id, bucket.customer_id)
        return bucket_id

    def buckets_by_id(self, bucket_ids: Iterable[int]) -> dict[int, Bucket]:
        return {i: self.s.buckets[i] for i in bucket_ids}

    def buckets(self, *, program_id: str, customer_id: str, now: datetime) -> list[Bucket]:
        return [
            b
            for b in self._state(program_id, customer_id, now, "").buckets
            if b.remaining > 0 and not b.expired_at(now)
        ]

    def _move(self, moves: Iterable[Debit], sign: int) -> None:
        for d in moves:
            bucket = self.s.buckets[d.bucket_id]
            self.s.buckets[d.bucket_id] = replace(
                bucket, remaining=bucket.remaining + sign * d.points
            )
            assert self.s.buckets[d.bucket_id].remaining >= 0, "a bucket went below zero"

    def take(self, debits: Iterable[Debit]) -> None:
        self._move(debits, -1)

    def give_back(self, credits: Iterable[Debit]) -> None:
        self._move(credits, 1)

    def record_expired(self, amounts: Iterable[Debit]) -> None:
        for d in amounts:
            self.s.written_off[d.bucket_id] = self.s.written_off.get(d.bucket_id, 0) + d.points

    def written_off(self, bucket_id: int) -> int:
        return self.s.written_off.get(bucket_id, 0)

    def take_written_off(self, bucket_id: int, points: int) -> None:
        self.s.written_off[bucket_id] = self.written_off(bucket_id) - points

    def write_settlement(self, settlement: Settlement) -> None:
        self._move(settlement.payments, -1)
        for bucket_id in settlement.settled:
            self.s.buckets[bucket_id] = replace(self.s.buckets[bucket_id], settled=True)

    def pricing_tier(self, program: Program, *, customer_id: str, now: datetime) -> Tier:
        return program.tiers[0]  # no order history in the fake: the base tier

    def tier_status(self, program: Program, *, customer_id: str, now: datetime) -> TierStatus:
        return tier_status(program, [], now=now)

    def due_for_expiry(self, *, now: datetime, limit: int) -> list[tuple[str, str]]:
        due = {
            self.s.owners[i]
            for i, b in self.s.buckets.items()
            if b.remaining > 0 and b.expires_at is not None and b.expires_at <= now
        }
        return sorted(due)[:limit]

    def expire(self, *, program_id: str, customer_id: str, now: datetime) -> list[Expired]:
        expired = [
            Expired(i, b.source, b.remaining, b.expires_at)
            for i, b in sorted(self.s.buckets.items())
            if self.s.owners[i] == (program_id, customer_id)
            and b.remaining > 0
            and b.expires_at is not None
            and b.expires_at <= now
        ]
        self.take(Debit(e.bucket_id, e.points) for e in expired)
        self.record_expired(Debit(e.bucket_id, e.points) for e in expired)
        return expired


class FakeOrders:
    def __init__(self, state: State) -> None:
        self.s = state

    def get(self, *, program_id: str, order_id: str) -> Order | None:
        return self.s.orders.get((program_id, order_id))

    def customer(self, *, program_id: str, order_id: str) -> str | None:
        order = self.s.orders.get((program_id, order_id))
        return None if order is None else order.customer_id

    def add(self, order: Order, *, now: datetime) -> None:
        key = (order.program_id, order.order_id)
        if key in self.s.orders:
            raise DuplicateOrder(str(key))
        self.s.orders[key] = order

    def add_redemption(self, redemption: Redemption) -> None:
        key = (redemption.program_id, redemption.order_id)
        order = self.s.orders[key]
        if order.live_redemption is not None:
            raise DuplicateRedemption(str(key))
        self.s.orders[key] = replace(order, attempts=(*order.attempts, redemption))

    def set_state(self, *, redemption_id: str, state: RedemptionState, now: datetime) -> None:
        for key, order in self.s.orders.items():
            self.s.orders[key] = replace(
                order,
                attempts=tuple(
                    replace(r, state=state) if r.redemption_id == redemption_id else r
                    for r in order.attempts
                ),
            )

    def add_accrual(self, accrual: Accrual) -> None:
        key = (accrual.program_id, accrual.order_id)
        if self.s.orders[key].accrual is not None:
            raise DuplicateAccrual(str(key))
        self.s.orders[key] = replace(self.s.orders[key], accrual=accrual)

    def record_return(
        self, order: Order, plan: ReturnPlan, *, restored: Sequence[Debit], now: datetime
    ) -> None:
        key = (order.program_id, order.order_id)
        stored = self.s.orders[key]  # a release may have moved its hold already
        lines = tuple(
            replace(x, returned_units=x.returned_units + plan.order_units.get(x.line_id, 0))
            for x in stored.lines
        )
        attempts = stored.attempts
        if plan.redemption is not None:
            back = plan.redemption
            attempts = tuple(
                _returned(r, back.units, back.points, back.state)
                if r.redemption_id == back.redemption.redemption_id
                else r
                for r in attempts
            )
        accrual = stored.accrual
        if plan.accrual is not None and accrual is not None:
            accrual = returned_accrual(accrual, plan.accrual)
        self.s.orders[key] = replace(stored, lines=lines, attempts=attempts, accrual=accrual)


def _returned(
    redemption: Redemption, units: dict[str, int], points: int, state: RedemptionState
) -> Redemption:
    return replace(
        redemption,
        state=state,
        points_reversed=redemption.points_reversed + points,
        lines=tuple(
            replace(line, returned_units=line.returned_units + units.get(line.line_id, 0))
            for line in redemption.lines
        ),
    )


class FakeLedger:
    def __init__(self, state: State) -> None:
        self.s = state

    def highest_entry_id(self, *, program_id: str, customer_id: str) -> int:
        ids = [
            n
            for n, (p, c, _) in enumerate(self.s.ledger, start=1)
            if (p, c) == (program_id, customer_id)
        ]
        return max(ids, default=0)

    def page(
        self,
        *,
        program_id: str,
        customer_id: str,
        up_to: datetime,
        highest_entry_id: int,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[LedgerEntry]:
        numbered = [
            replace(e, entry_id=n)
            for n, (p, c, e) in enumerate(self.s.ledger, start=1)
            if (p, c) == (program_id, customer_id)
            and e.effective_at <= up_to
            and n <= highest_entry_id
        ]
        numbered.sort(key=lambda e: (e.effective_at, e.entry_id))
        if after is not None:
            numbered = [e for e in numbered if (e.effective_at, e.entry_id) > after]
        return numbered[:limit]

    def append(
        self,
        entries: Sequence[LedgerEntry],
        *,
        program_id: str,
        customer_id: str,
        request_id: str | None,
        now: datetime,
    ) -> None:
        self.s.ledger += [(program_id, customer_id, e) for e in entries if e.points]


class FakeUnitOfWork:
    def __init__(self, state: State, orders: type[FakeOrders] = FakeOrders) -> None:
        self.accounts = FakeAccounts(state)
        self.orders = orders(state)
        self.ledger = FakeLedger(state)

    def place(self, placement: Placement) -> None:
        p = placement
        if p.order is not None:
            self.orders.add(p.order, now=p.now)
        self.orders.add_redemption(p.redemption)
        self.accounts.take(p.taken)
        self.ledger.append(
            p.entries, program_id=p.redemption.program_id,
            customer_id=p.redemption.customer_id, request_id=p.request_id, now=p.now,
        )  # fmt: skip


class FakeStore:
    """`orders`: another FakeOrders, to play what a concurrent transaction did."""

    def __init__(self, orders: type[FakeOrders] = FakeOrders) -> None:
        self.state = State()
        self.orders = orders

    def once(
        self,
        request: Request,
        *,
        now: datetime,
        effect: Callable[[FakeUnitOfWork], R],
        render: Callable[[R], bytes],
    ) -> Outcome[R]:
        key = (request.program_id, request.request_id)
        if key in self.state.answers:
            method, fingerprint, answer = self.state.answers[key]
            if (method, fingerprint) != (request.method, request.fingerprint):
                raise IdempotencyKeyReused(request.request_id)
            return Outcome(answer, None)
        before = copy.deepcopy(self.state)
        try:
            result = effect(FakeUnitOfWork(self.state, self.orders))
            answer = render(result)
        except Exception:
            self.state.__dict__.update(before.__dict__)  # the transaction rolls back
            raise
        self.state.answers[key] = (request.method, request.fingerprint, answer)
        return Outcome(answer, result)

    def transact(self, work: Callable[[FakeUnitOfWork], T]) -> T:
        before = copy.deepcopy(self.state)
        try:
            return work(FakeUnitOfWork(self.state, self.orders))
        except Exception:
            self.state.__dict__.update(before.__dict__)
            raise

    def read(self, work: Callable[[FakeUnitOfWork], T]) -> T:
        return work(FakeUnitOfWork(self.state, self.orders))


def deps_on(store: FakeStore) -> Deps:
    # the page-token key a database would hold (server/store/secrets.py)
    return Deps(None, PROGRAMS, store=store, secrets={"page_token": bytes(32)})


def key(request_id: str, fingerprint: bytes = b"f") -> Idempotency:
    return Idempotency(request_id, fingerprint)


def render(result: object) -> bytes:
    """Answers are bytes on the wire; the tests read the results, so any stable bytes do."""
    return repr(result).encode()
