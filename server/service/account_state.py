"""An account as it stands at `now`: buckets, debt and holds, with time's effects applied.

Two effects of time need no job: holds lapse at their deadline, and matured
credits pay debt. Mutations take the state under the account lock and write
those effects down; reads compute the same state without writing (reads
never write).
"""

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection

from pricing.buckets import (
    Bucket,
    Settlement,
    balance_by_source,
    before_written_expiry,
    settle_matured,
    spendable,
)
from pricing.holds import (
    Hold,
    Release,
    before_written_lapses,
    lapse_order,
    release,
    with_lapsed_holds,
)
from pricing.ledger import LedgerEntry
from pricing.order import OrderHead, RedemptionState
from server.store import buckets as bucket_store
from server.store.accounts import lock_account, set_debt
from server.store.ledger import append
from server.store.loop_pool import LoopPool
from server.store.opening import Opened
from server.store.redemptions import account_holds, lapsed_after, record_release
from server.store.snapshot import Snapshot, snapshot, snapshot_on_loop


@dataclass(frozen=True)
class AccountState:
    program_id: str
    customer_id: str
    buckets: list[Bucket]
    debt: int
    holds: list[Hold]  # live holds only: those lapsed by `now` are already given back
    now: datetime
    order: OrderHead | None = None  # the order `locked_state` was asked about, if recorded

    def spendable(self) -> list[Bucket]:
        return spendable(self.buckets, self.now)

    @property
    def spendable_points(self) -> int:
        return sum(b.remaining for b in self.spendable())

    @property
    def pending_points(self) -> int:
        return sum(b.remaining for b in self.buckets if b.pending_at(self.now))

    @property
    def held_points(self) -> int:
        return sum(hold.points for hold in self.holds)

    def balances(self) -> dict[str, int]:
        return balance_by_source(self.buckets, self.now)


def locked_state(
    connection: Connection,
    *,
    program_id: str,
    customer_id: str,
    now: datetime,
    order_id: str = "",
    opened: Opened | None = None,
) -> AccountState:
    """Lock the account row (creating it if missing), then write down lapses and settlements.

    `order_id`, when given, is looked up under the lock with the rest (`order`). `opened`:
    the account already locked and read (server/store/opening.py).
    """
    account = {"program_id": program_id, "customer_id": customer_id}
    if opened is None:
        debt, seen = _lock_and_read(connection, **account, now=now, order_id=order_id)
    else:
        debt, seen = opened.debt, opened.seen
    found = seen.buckets
    holds = _holds(connection, seen, **account)
    lapsed = [hold for hold in lapse_order(holds) if hold.lapsed_at(now)]
    for hold in lapsed:
        debt -= write_release(
            connection, hold, **account, state=RedemptionState.EXPIRED, at=hold.deadline,
            now=now, request_id=None, debt=debt,
        ).to_debt  # fmt: skip
    if lapsed:  # the points came back into their buckets: read them again
        found = bucket_store.account_buckets(connection, **account, now=now)
    settlement = _settle(connection, found, program_id, customer_id, debt=debt, now=now)
    live = [hold for hold in holds if not hold.lapsed_at(now)]
    order = _after_lapses(seen.order, lapsed)
    found = settlement.apply(found)
    return AccountState(program_id, customer_id, found, settlement.debt, live, now, order=order)


def _lock_and_read(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime, order_id: str
) -> tuple[int, Snapshot]:
    """The account locked (created if missing), its debt, and the account read under the lock."""
    debt = lock_account(connection, program_id=program_id, customer_id=customer_id, now=now)
    seen = snapshot(
        connection, program_id=program_id, customer_id=customer_id, now=now, order_id=order_id
    )
    return debt, seen


def _settle(
    connection: Connection,
    found: list[Bucket],
    program_id: str,
    customer_id: str,
    *,
    debt: int,
    now: datetime,
) -> Settlement:
    """Matured credits pay the debt, written down."""
    settlement = settle_matured(found, debt=debt, now=now)
    if settlement.settled:
        bucket_store.write_settlement(connection, settlement)
        if settlement.debt != debt:
            set_debt(
                connection,
                program_id=program_id,
                customer_id=customer_id,
                debt_points=settlement.debt,
            )
    return settlement


def _after_lapses(order: OrderHead | None, lapsed: list[Hold]) -> OrderHead | None:
    """The order's head once its own hold, if it just lapsed, is no longer live."""
    if order is None or not any(hold.order_id == order.order_id for hold in lapsed):
        return order
    return replace(order, has_live_redemption=False)


def read_state(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> AccountState:
    """The same view as `locked_state`, without locking or writing anything.

    Time's effects are decided at `now` both ways (docs/rules.md §7): lapses and expiry due by
    `now` but not yet written are applied; those written already but due after `now`
    (a read at an earlier `as_of`) are undone.
    """
    account = {"program_id": program_id, "customer_id": customer_id}
    seen = snapshot(connection, **account, now=now)
    found = seen.buckets
    holds = _holds(connection, seen, **account)
    later = lapsed_after(connection, **account, now=now) if seen.lapsed_later else []
    lapsed = [hold for hold in holds if hold.lapsed_at(now)]
    # Buckets a hold drained to zero are not among `found`: fetch them too.
    known = {b.bucket_id for b in found}
    wanted = {d.bucket_id for hold in [*lapsed, *later] for d in hold.debits} - known
    if wanted:
        found += bucket_store.buckets_by_id(connection, wanted).values()
    return _as_of(account, found, seen.debt, holds=holds, later=later, now=now)


async def state_on_loop(
    pool: LoopPool, *, program_id: str, customer_id: str, now: datetime
) -> AccountState | None:
    """`read_state` in one statement sent from the event loop (server/store/loop_pool.py);
    None when the account has holds to read as well: `read_state` reads it then."""
    seen = await snapshot_on_loop(pool, program_id=program_id, customer_id=customer_id, now=now)
    if seen.has_holds or seen.lapsed_later:
        return None
    account = {"program_id": program_id, "customer_id": customer_id}
    return _as_of(account, seen.buckets, seen.debt, holds=[], later=[], now=now)


def _as_of(
    account: dict[str, str],
    found: list[Bucket],
    debt: int,
    *,
    holds: list[Hold],
    later: list[Hold],
    now: datetime,
) -> AccountState:
    """The account read at `now`: lapses and expiry due by `now` applied, later ones undone."""
    lapsed = [hold for hold in holds if hold.lapsed_at(now)]
    # Undone in the reverse of the order they were written: the expiry after the lapses.
    found = before_written_expiry(found, now)
    found, debt, live_again = before_written_lapses(found, later, debt=debt)
    found, debt = with_lapsed_holds(found, lapsed, now=now, debt=debt)
    settlement = settle_matured(found, debt=debt, now=now)
    live = [hold for hold in holds if not hold.lapsed_at(now)] + live_again
    return AccountState(
        account["program_id"], account["customer_id"], settlement.apply(found),
        settlement.debt, live, now,
    )  # fmt: skip


def _holds(
    connection: Connection, seen: Snapshot, *, program_id: str, customer_id: str
) -> list[Hold]:
    if not seen.has_holds:
        return []
    return account_holds(connection, program_id=program_id, customer_id=customer_id)


def write_release(
    connection: Connection,
    hold: Hold,
    *,
    program_id: str,
    customer_id: str,
    state: RedemptionState,
    at: datetime,
    now: datetime,
    request_id: str | None,
    debt: int,
    reason: str = "",
) -> Release:
    """Give a hold's points back (RELEASED on request, EXPIRED at its deadline).

    Like every credit they pay the account's debt `debt` first (docs/rules.md §5). Points whose
    bucket expired while they were held come back expired (docs/rules.md §6's rule for returns):
    a RELEASE and an EXPIRY entry, both at `at`.
    """
    released = release(hold, at=at, debt=debt)
    bucket_store.give_back(connection, released.to_buckets)
    bucket_store.record_expired(connection, released.stay_expired)
    account = {"program_id": program_id, "customer_id": customer_id}
    if released.to_debt:
        set_debt(connection, **account, debt_points=debt - released.to_debt)
    record_release(
        connection, redemption_id=hold.redemption_id, returned=released.returned, state=state,
        now=now, paid_debt=released.to_debt,
    )  # fmt: skip
    sources = bucket_store.buckets_by_id(connection, (d.bucket_id for d in hold.debits))
    entries = _release_entries(released, hold, sources, at=at, reason=reason)
    append(connection, entries, **account, request_id=request_id, now=now)
    return released


def _release_entries(
    released: Release, hold: Hold, sources: dict[int, Bucket], *, at: datetime, reason: str
) -> list[LedgerEntry]:
    """RELEASE per bucket the points went back to, EXPIRY for those that stay expired."""
    return [
        LedgerEntry(
            kind=kind,
            points=sign * d.points,
            source=sources[d.bucket_id].source,
            effective_at=at,
            bucket_id=d.bucket_id,
            order_id=hold.order_id,
            reason=reason,
        )
        for kind, sign, moves in (
            ("RELEASE", 1, released.returned),
            ("EXPIRY", -1, released.stay_expired),
        )
        for d in moves
    ]
