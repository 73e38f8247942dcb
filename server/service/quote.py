"""QuoteRedemption: a read; it writes nothing."""

from datetime import datetime

from pricing.quote import Quote, check_currency, quote
from server.service import commands
from server.service.deps import Deps
from server.service.ports import UnitOfWork


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

    result = deps.store.read(read)
    offered = result.options[result.recommended].max_points
    deps.metrics.quoted.labels(program.id).inc(offered)
    return result
