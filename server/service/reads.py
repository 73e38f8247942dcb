"""GetAccount, GetRedemption and ListLedgerEntries: reads, which never write."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pricing.errors import OrderNotFound
from pricing.ledger import LedgerEntry
from pricing.order import Redemption
from pricing.tiers import TierStatus
from server.service import commands, page_tokens
from server.service.deps import Deps
from server.service.ports import UnitOfWork

MAX_PAGE = 1_000
DEFAULT_PAGE = 100


@dataclass(frozen=True)
class Account:
    spendable_points: int
    pending_points: int
    held_points: int
    balances_by_source: Mapping[str, int]
    next_expiry: tuple[datetime, int] | None  # the earliest expiry among spendable points
    tier: TierStatus
    debt_points: int


def get_account(deps: Deps, *, program_id: str, customer_id: str, now: datetime) -> Account:
    program = deps.program(program_id)

    def read(uow: UnitOfWork) -> Account:
        state = uow.accounts.read(program_id=program.id, customer_id=customer_id, now=now)
        live = state.spendable()
        next_expiry = None
        expiring = [b for b in live if b.expires_at is not None]
        if expiring:
            first = expiring[0].expires_at
            assert first is not None
            next_expiry = (first, sum(b.remaining for b in expiring if b.expires_at == first))
        return Account(
            spendable_points=state.spendable_points,
            pending_points=state.pending_points,
            held_points=state.held_points,
            balances_by_source=state.balances(),
            next_expiry=next_expiry,
            tier=uow.accounts.tier_status(program, customer_id=customer_id, now=now),
            debt_points=state.debt,
        )

    return deps.store.read(read)


def get_redemption(deps: Deps, *, program_id: str, order_id: str, now: datetime) -> Redemption:
    """The order's latest redemption attempt (docs/rules.md §6), as it stands at `now`."""
    program = deps.program(program_id)

    def read(uow: UnitOfWork) -> Redemption | None:
        order = uow.orders.get(program_id=program.id, order_id=order_id)
        return None if order is None else order.latest

    found = deps.store.read(read)
    if found is None:
        raise OrderNotFound(order_id)
    return found.seen_at(now)


@dataclass(frozen=True)
class LedgerPage:
    entries: list[LedgerEntry]
    next_page_token: str  # "" on the walk's last page


def list_ledger_entries(
    deps: Deps, request: commands.LedgerPageRequest, *, now: datetime
) -> LedgerPage:
    """One page of a walk (docs/rules.md §7): every entry that existed at its first page, once."""
    program = deps.program(request.program_id)
    size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
    account = {"program_id": program.id, "customer_id": request.customer_id}
    key = deps.secret("page_token")
    walk = page_tokens.read(key, request.page_token, **account) if request.page_token else None

    def read(uow: UnitOfWork) -> tuple[list[LedgerEntry], int, datetime]:
        highest = walk.highest_entry_id if walk else uow.ledger.highest_entry_id(**account)
        up_to = walk.up_to if walk else now
        after = (walk.after_effective_at, walk.after_entry_id) if walk else None
        entries = uow.ledger.page(
            **account, up_to=up_to, highest_entry_id=highest, after=after, limit=size + 1
        )
        return entries, highest, up_to

    entries, highest, up_to = deps.store.read(read)
    if len(entries) <= size:
        return LedgerPage(entries, "")
    last = entries[size - 1]
    following = page_tokens.Walk(highest, up_to, last.effective_at, last.entry_id)
    return LedgerPage(entries[:size], page_tokens.issue(key, following, **account))
