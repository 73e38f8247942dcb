"""An account as it stands at `now`: its buckets and debt, with matured credits settled.

Mutations take it under the account lock and write the settlement down;
reads compute the same settlement without writing (reads never write).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from pricing.buckets import Bucket, balance_by_source, settle_matured, spendable
from server.store import buckets as bucket_store
from server.store.accounts import lock_account, read_debt, set_debt


@dataclass(frozen=True)
class AccountState:
    program_id: str
    customer_id: str
    buckets: list[Bucket]
    debt: int
    now: datetime

    def spendable(self) -> list[Bucket]:
        return spendable(self.buckets, self.now)

    @property
    def spendable_points(self) -> int:
        return sum(b.remaining for b in self.spendable())

    @property
    def pending_points(self) -> int:
        return sum(b.remaining for b in self.buckets if b.pending_at(self.now))

    def balances(self) -> dict[str, int]:
        return balance_by_source(self.buckets, self.now)


def locked_state(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> AccountState:
    """Lock the account row (creating it if missing) and settle what matured by `now`."""
    debt = lock_account(connection, program_id=program_id, customer_id=customer_id, now=now)
    found = bucket_store.account_buckets(
        connection, program_id=program_id, customer_id=customer_id, now=now
    )
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
    return AccountState(program_id, customer_id, settlement.apply(found), settlement.debt, now)


def read_state(
    connection: Connection, *, program_id: str, customer_id: str, now: datetime
) -> AccountState:
    """The same view as `locked_state`, without locking or writing anything."""
    debt = read_debt(connection, program_id=program_id, customer_id=customer_id)
    found = bucket_store.account_buckets(
        connection, program_id=program_id, customer_id=customer_id, now=now
    )
    settlement = settle_matured(found, debt=debt, now=now)
    return AccountState(program_id, customer_id, settlement.apply(found), settlement.debt, now)
