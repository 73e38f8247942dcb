"""QuoteRedemption: a read; it writes nothing."""

from datetime import datetime

from pricing.quote import Quote, check_currency, quote
from server.service import commands
from server.service.deps import Deps
from server.service.ports import UnitOfWork
from server.service.tiers import needs_tier_lookup


def quote_redemption(deps: Deps, command: commands.QuoteRedemption, *, now: datetime) -> Quote:
    program = deps.program(command.program_id)
    check_currency(program, command.cart)

    def read(uow: UnitOfWork) -> Quote:
        customer = command.customer_id
        state = uow.accounts.read(program_id=program.id, customer_id=customer, now=now)
        tier = uow.accounts.pricing_tier(program, customer_id=customer, now=now)
        return quote(
            program,
            cart=command.cart,
            tier=tier,
            payment_method=command.payment_method,
            buckets=state.spendable(),
            now=now,
        )

    # An account without holds, in a program of one tier, is read in one statement.
    result = deps.store.read(read, likely_one_statement=not needs_tier_lookup(program))
    offered = result.options[result.recommended].max_points
    deps.metrics.quoted.labels(program.id).inc(offered)
    return result
