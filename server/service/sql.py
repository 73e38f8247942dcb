"""The seam's protocols (server/service/ports.py) on the database: one transaction each."""

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection

from pricing.accrual import Accrual
from pricing.buckets import Bucket, Debit, Expired, Settlement
from pricing.holds import Hold, Release
from pricing.ledger import LedgerEntry
from pricing.order import Order, RedemptionState, ReturnPlan
from pricing.program import Program, Tier
from pricing.tiers import TierStatus
from server.service.account_state import AccountState, locked_state, read_state, write_release
from server.service.errors import IdempotencyKeyReused
from server.service.ports import NewBucket, Outcome, Placement, Request
from server.service.tiers import current_tier, pricing_tier
from server.store import (
    accruals,
    idempotency,
    ledger,
    order_read,
    orders,
    redemptions,
    returns,
)
from server.store import buckets as bucket_store
from server.store import placement as placement_store
from server.store.accounts import set_debt
from server.store.db import Database
from server.store.opening import Opened, claim_and_lock
from server.store.redemptions import accounts_with_lapsed_holds

R = TypeVar("R")
T = TypeVar("T")


class SqlAccounts:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.opened: Opened | None = None  # locked and read with the claim (`Request.locks`)

    def lock(
        self, *, program_id: str, customer_id: str, now: datetime, order_id: str = ""
    ) -> AccountState:
        opened, self.opened = self.opened, None
        if opened is not None:
            asked = (opened.program_id, opened.customer_id, opened.order_id)
            assert asked == (program_id, customer_id, order_id), "locked ahead: another account"
        return locked_state(
            self.connection,
            program_id=program_id,
            customer_id=customer_id,
            now=now,
            order_id=order_id,
            opened=opened,
        )

    def read(self, *, program_id: str, customer_id: str, now: datetime) -> AccountState:
        return read_state(self.connection, program_id=program_id, customer_id=customer_id, now=now)

    def set_debt(self, *, program_id: str, customer_id: str, debt_points: int) -> None:
        set_debt(
            self.connection, program_id=program_id, customer_id=customer_id, debt_points=debt_points
        )

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
        return write_release(
            self.connection, hold, program_id=program_id, customer_id=customer_id,
            state=RedemptionState.RELEASED, at=at, now=now, request_id=request_id, debt=debt,
            reason=reason,
        )  # fmt: skip

    def add_bucket(self, bucket: NewBucket, *, now: datetime) -> int:
        return bucket_store.add_bucket(
            self.connection,
            program_id=bucket.program_id,
            customer_id=bucket.customer_id,
            source=bucket.source,
            granted=bucket.granted,
            remaining=bucket.remaining,
            available_at=bucket.available_at,
            expires_at=bucket.expires_at,
            origin=bucket.origin,
            order_id=bucket.order_id,
            now=now,
            settled=bucket.settled,
        )

    def buckets_by_id(self, bucket_ids: Iterable[int]) -> dict[int, Bucket]:
        return bucket_store.buckets_by_id(self.connection, bucket_ids)

    def buckets(self, *, program_id: str, customer_id: str, now: datetime) -> list[Bucket]:
        return bucket_store.account_buckets(
            self.connection, program_id=program_id, customer_id=customer_id, now=now
        )

    def take(self, debits: Iterable[Debit]) -> None:
        bucket_store.take(self.connection, debits)

    def give_back(self, credits: Iterable[Debit]) -> None:
        bucket_store.give_back(self.connection, credits)

    def record_expired(self, amounts: Iterable[Debit]) -> None:
        bucket_store.record_expired(self.connection, amounts)

    def written_off(self, bucket_id: int) -> int:
        return bucket_store.written_off(self.connection, bucket_id)

    def take_written_off(self, bucket_id: int, points: int) -> None:
        bucket_store.take_written_off(self.connection, bucket_id, points)

    def write_settlement(self, settlement: Settlement) -> None:
        bucket_store.write_settlement(self.connection, settlement)

    def pricing_tier(self, program: Program, *, customer_id: str, now: datetime) -> Tier:
        return pricing_tier(self.connection, program, customer_id=customer_id, now=now)

    def tier_status(self, program: Program, *, customer_id: str, now: datetime) -> TierStatus:
        return current_tier(self.connection, program, customer_id=customer_id, now=now)

    def due_for_expiry(self, *, now: datetime, limit: int) -> list[tuple[str, str]]:
        due = bucket_store.accounts_with_expired_points(self.connection, now=now, limit=limit)
        lapsed = accounts_with_lapsed_holds(self.connection, now=now, limit=limit)
        return sorted(set(due) | set(lapsed))

    def expire(self, *, program_id: str, customer_id: str, now: datetime) -> list[Expired]:
        return bucket_store.expire_account(
            self.connection, program_id=program_id, customer_id=customer_id, now=now
        )


class SqlOrders:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def get(self, *, program_id: str, order_id: str) -> Order | None:
        return order_read.find_order(self.connection, program_id=program_id, order_id=order_id)

    def customer(self, *, program_id: str, order_id: str) -> str | None:
        return orders.order_customer(self.connection, program_id=program_id, order_id=order_id)

    def add(self, order: Order, *, now: datetime) -> None:
        orders.add_order(self.connection, order, now=now)

    def set_state(self, *, redemption_id: str, state: RedemptionState, now: datetime) -> None:
        redemptions.set_state(self.connection, redemption_id=redemption_id, state=state, now=now)

    def add_accrual(self, accrual: Accrual) -> None:
        accruals.add_accrual(self.connection, accrual)

    def record_return(
        self, order: Order, plan: ReturnPlan, *, restored: Sequence[Debit], now: datetime
    ) -> None:
        if self.connection.dialect.name == "postgresql":
            returns.write_return(
                self.connection, program_id=order.program_id, order_id=order.order_id,
                plan=plan, restored=restored, now=now,
            )  # fmt: skip
            return
        orders.record_line_returns(
            self.connection,
            program_id=order.program_id,
            order_id=order.order_id,
            units=plan.order_units,
        )
        if plan.redemption is not None:
            back = plan.redemption
            redemptions.record_return(
                self.connection, back.redemption, units=back.units, restored=restored,
                points_returned=back.points, state=back.state, now=now,
            )  # fmt: skip
        if plan.accrual is not None:
            taken = plan.accrual
            accruals.record_accrual_return(
                self.connection, taken.accrual, units=taken.units,
                base_returned_minor=taken.base_minor, points_taken_back=taken.points,
            )  # fmt: skip


class SqlLedger:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def highest_entry_id(self, *, program_id: str, customer_id: str) -> int:
        return ledger.highest_entry_id(
            self.connection, program_id=program_id, customer_id=customer_id
        )

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
        return ledger.page(
            self.connection,
            program_id=program_id,
            customer_id=customer_id,
            up_to=up_to,
            highest_entry_id=highest_entry_id,
            after=None if after is None else ledger.Cursor(*after),
            limit=limit,
        )

    def append(
        self,
        entries: Sequence[LedgerEntry],
        *,
        program_id: str,
        customer_id: str,
        request_id: str | None,
        now: datetime,
    ) -> None:
        ledger.append(
            self.connection,
            entries,
            program_id=program_id,
            customer_id=customer_id,
            request_id=request_id,
            now=now,
        )


class SqlUnitOfWork:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.accounts = SqlAccounts(connection)
        self.orders = SqlOrders(connection)
        self.ledger = SqlLedger(connection)

    def place(self, placement: Placement) -> None:
        p = placement
        placement_store.place(
            self.connection, order=p.order, redemption=p.redemption, taken=p.taken,
            entries=p.entries, request_id=p.request_id, now=p.now,
        )  # fmt: skip


class SqlStore:
    """Units of work on `db`: each mutation one transaction, its request id claimed first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def once(
        self,
        request: Request,
        *,
        now: datetime,
        effect: Callable[[SqlUnitOfWork], R],
        render: Callable[[R], bytes],
    ) -> Outcome[R]:
        made: list[R] = []

        def work(connection: Connection) -> bytes:
            made.clear()  # a retried transaction starts over
            uow = SqlUnitOfWork(connection)
            stored = _open(connection, request, uow, now=now)
            if stored is not None:
                return stored
            result = effect(uow)
            answer = render(result)
            idempotency.record_answer(
                connection,
                program_id=request.program_id,
                request_id=request.request_id,
                response=answer,
            )
            made.append(result)
            return answer

        answer = self.db.transact(work)
        return Outcome(answer, made[0] if made else None)

    def transact(self, work: Callable[[SqlUnitOfWork], T]) -> T:
        return self.db.transact(lambda connection: work(SqlUnitOfWork(connection)))

    def read(self, work: Callable[[SqlUnitOfWork], T]) -> T:
        return self.db.read(lambda connection: work(SqlUnitOfWork(connection)))


def _open(
    connection: Connection, request: Request, uow: SqlUnitOfWork, *, now: datetime
) -> bytes | None:
    """Claim the request id (None), or the answer stored by the call that claimed it first.

    On PostgreSQL a request naming the account it locks (`Request.locks`) has the account
    locked and read with the claim (server/store/opening.py), for its `lock` to take.
    """
    key = {"program_id": request.program_id, "request_id": request.request_id}
    if request.locks is not None and connection.dialect.name == "postgresql":
        customer_id, order_id = request.locks
        opened = claim_and_lock(
            connection, **key, method=request.method, fingerprint=request.fingerprint,
            customer_id=customer_id, order_id=order_id, now=now,
        )  # fmt: skip
        uow.accounts.opened = opened
        stored = None if opened else idempotency.earlier_claim(connection, **key)
    else:
        stored = idempotency.claim(
            connection, **key, method=request.method, fingerprint=request.fingerprint, now=now
        )
    if stored is None:
        return None
    same = (stored.method, stored.fingerprint) == (request.method, request.fingerprint)
    if not same or stored.response is None:
        raise IdempotencyKeyReused(request.request_id)  # used for another request
    return stored.response
