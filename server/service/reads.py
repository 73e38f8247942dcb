"""GetAccount, GetRedemption and ListLedgerEntries: reads, which never write."""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection

from pricing.errors import OrderNotFound
from pricing.tiers import TierStatus
from server.service import commands, page_tokens
from server.service.account_state import read_state
from server.service.deps import Deps
from server.service.tiers import current_tier
from server.store import ledger
from server.store.redemptions import Redemption, find_redemption

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

    def read(connection: Connection) -> Account:
        state = read_state(connection, program_id=program.id, customer_id=customer_id, now=now)
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
            tier=current_tier(connection, program, customer_id=customer_id, now=now),
            debt_points=state.debt,
        )

    return deps.db.read(read)


def get_redemption(deps: Deps, *, program_id: str, order_id: str, now: datetime) -> Redemption:
    program = deps.program(program_id)

    def read(connection: Connection) -> Redemption | None:
        return find_redemption(connection, program_id=program.id, order_id=order_id)

    found = deps.db.read(read)
    if found is None:
        raise OrderNotFound(order_id)
    return as_seen_at(found, now)


def as_seen_at(redemption: Redemption, now: datetime) -> Redemption:
    """A hold lapses exactly at its deadline, whether or not that is written down yet; a
    lapse written down already is not seen at an `as_of` before the deadline (SPEC §7)."""
    deadline = redemption.hold_expires_at
    if deadline is None:
        return redemption
    if redemption.state == "HELD" and deadline <= now:
        return replace(redemption, state="EXPIRED")
    if redemption.state == "EXPIRED" and now < deadline:
        return replace(redemption, state="HELD")
    return redemption


@dataclass(frozen=True)
class LedgerPage:
    entries: list[ledger.LedgerEntry]
    next_page_token: str  # "" on the walk's last page


def list_ledger_entries(
    deps: Deps, request: commands.LedgerPageRequest, *, now: datetime
) -> LedgerPage:
    """One page of a walk (SPEC §7): every entry that existed at its first page, once."""
    program = deps.program(request.program_id)
    size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
    account = {"program_id": program.id, "customer_id": request.customer_id}
    key = deps.secret("page_token")
    walk = page_tokens.read(key, request.page_token, **account) if request.page_token else None

    def read(connection: Connection) -> tuple[list[ledger.LedgerEntry], int, datetime]:
        highest = walk.highest_entry_id if walk else ledger.highest_entry_id(connection, **account)
        up_to = walk.up_to if walk else now
        after = ledger.Cursor(walk.after_effective_at, walk.after_entry_id) if walk else None
        entries = ledger.page(
            connection, **account, up_to=up_to, highest_entry_id=highest, after=after,
            limit=size + 1,
        )  # fmt: skip
        return entries, highest, up_to

    entries, highest, up_to = deps.db.read(read)
    if len(entries) <= size:
        return LedgerPage(entries, "")
    last = entries[size - 1]
    following = page_tokens.Walk(highest, up_to, last.effective_at, last.entry_id)
    return LedgerPage(entries[:size], page_tokens.issue(key, following, **account))
