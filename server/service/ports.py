"""The seam between use cases and storage: small repositories and a unit of work.

A use case runs inside one unit of work (one database transaction, docs/rules.md §7): it loads
what it needs (an account under its lock, an order), asks the domain (`pricing/`), and
saves what the domain decided. `server/service/sql.py` implements these protocols on
the database; tests/unit/service/ implements them in memory.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from pricing.accrual import Accrual
from pricing.buckets import Bucket, Debit, Expired, Settlement
from pricing.holds import Hold, Release
from pricing.ledger import LedgerEntry
from pricing.order import Order, Redemption, RedemptionState, ReturnPlan
from pricing.program import Program, Tier
from pricing.tiers import TierStatus
from server.service.account_state import AccountState

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class NewBucket:
    program_id: str
    customer_id: str
    source: str
    granted: int
    remaining: int
    available_at: datetime
    expires_at: datetime | None
    origin: str  # GRANT or ACCRUAL
    order_id: str | None
    settled: bool = True


class Accounts(Protocol):
    """Accounts, their buckets of points and their tiers."""

    def lock(
        self, *, program_id: str, customer_id: str, now: datetime, order_id: str = ""
    ) -> AccountState:
        """The account under its row lock, lapses and settlements written down."""

    def read(self, *, program_id: str, customer_id: str, now: datetime) -> AccountState: ...

    def set_debt(self, *, program_id: str, customer_id: str, debt_points: int) -> None: ...

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
        """Give a hold's points back on request (RELEASED), with its ledger entries."""

    def add_bucket(self, bucket: NewBucket, *, now: datetime) -> int: ...

    def buckets_by_id(self, bucket_ids: Iterable[int]) -> dict[int, Bucket]: ...

    def buckets(self, *, program_id: str, customer_id: str, now: datetime) -> list[Bucket]: ...

    def take(self, debits: Iterable[Debit]) -> None: ...

    def give_back(self, credits: Iterable[Debit]) -> None: ...

    def record_expired(self, amounts: Iterable[Debit]) -> None: ...

    def written_off(self, bucket_id: int) -> int: ...

    def take_written_off(self, bucket_id: int, points: int) -> None: ...

    def write_settlement(self, settlement: Settlement) -> None: ...

    def pricing_tier(self, program: Program, *, customer_id: str, now: datetime) -> Tier: ...

    def due_for_expiry(self, *, now: datetime, limit: int) -> list[tuple[str, str]]:
        """Accounts with expired points or lapsed holds still to write down."""

    def expire(self, *, program_id: str, customer_id: str, now: datetime) -> list[Expired]:
        """Write off every point of the account whose bucket expired at or before `now`."""

    def tier_status(self, program: Program, *, customer_id: str, now: datetime) -> TierStatus: ...


@dataclass(frozen=True)
class Placement:
    """What an apply writes (`UnitOfWork.place`)."""

    redemption: Redemption
    order: Order | None  # the order when it is new, with its lines
    taken: Sequence[Debit]
    entries: Sequence[LedgerEntry]
    request_id: str
    now: datetime


class Orders(Protocol):
    """Orders with their lines, redemption attempts and accrual (docs/rules.md §6)."""

    def get(self, *, program_id: str, order_id: str) -> Order | None: ...

    def customer(self, *, program_id: str, order_id: str) -> str | None:
        """The order's customer (None: no such order), without the rest of it."""

    def add(self, order: Order, *, now: datetime) -> None:
        """Record a new order; `DuplicateOrder` when it was recorded meanwhile."""

    def set_state(self, *, redemption_id: str, state: RedemptionState, now: datetime) -> None: ...

    def add_accrual(self, accrual: Accrual) -> None:
        """`DuplicateAccrual` when the order got an accrual meanwhile."""

    def record_return(
        self, order: Order, plan: ReturnPlan, *, restored: Sequence[Debit], now: datetime
    ) -> None:
        """A return's units per line, points given back per debit, taken back, new state."""


class Ledger(Protocol):
    def highest_entry_id(self, *, program_id: str, customer_id: str) -> int:
        """The account's newest entry id (0 for none): what a walk over its pages covers."""

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
        """Entries effective at or before `up_to` with ids up to `highest_entry_id`, oldest
        first, after (effective_at, id)."""

    def append(
        self,
        entries: Sequence[LedgerEntry],
        *,
        program_id: str,
        customer_id: str,
        request_id: str | None,
        now: datetime,
    ) -> None: ...


class UnitOfWork(Protocol):
    """One transaction's repositories."""

    def place(self, placement: Placement) -> None:
        """An apply's writes at once: the order when new (`DuplicateOrder` when it was
        recorded meanwhile), the attempt (`DuplicateRedemption` when the order got a live
        one meanwhile), the points taken from their buckets, the ledger entries."""

    @property
    def accounts(self) -> Accounts: ...

    @property
    def orders(self) -> Orders: ...

    @property
    def ledger(self) -> Ledger: ...


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """The answer to send, and the effect's result when this call made it (None: a replay)."""

    answer: bytes
    result: R | None


@dataclass(frozen=True)
class Request:
    """What identifies a mutation for idempotency (docs/rules.md §7)."""

    program_id: str
    request_id: str
    method: str
    fingerprint: bytes
    # (customer, order) when the mutation starts by locking that account and reading that
    # order (`Accounts.lock`): a store may claim, lock and read in one round trip.
    locks: tuple[str, str] | None = None


class Store(Protocol):
    """Units of work: one per mutation (claiming its request id), or one for a read."""

    def once(
        self,
        request: Request,
        *,
        now: datetime,
        effect: Callable[[UnitOfWork], R],
        render: Callable[[R], bytes],
    ) -> Outcome[R]:
        """Claim the request id, apply `effect`, store its rendered answer: one transaction.

        A replay of the same request returns the stored answer and changes nothing.
        """

    def transact(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run `work` in one transaction (a job's, with no request id)."""

    def read(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run a read-only `work` (reads never write)."""
