"""QuoteRedemption: a read; it writes nothing."""

from datetime import datetime

from sqlalchemy import Connection

from pricing.quote import Quote, check_currency, quote
from server.service import commands
from server.service.account_state import read_state
from server.service.deps import Deps
from server.service.tiers import pricing_tier


def quote_redemption(deps: Deps, command: commands.QuoteRedemption, *, now: datetime) -> Quote:
    program = deps.program(command.program_id)
    check_currency(program, command.cart)

    def read(connection: Connection) -> Quote:
        state = read_state(
            connection, program_id=program.id, customer_id=command.customer_id, now=now
        )
        tier = pricing_tier(connection, program, customer_id=command.customer_id, now=now)
        return quote(
            program,
            cart=command.cart,
            tier=tier,
            payment_method=command.payment_method,
            buckets=state.spendable(),
            now=now,
        )

    result = deps.db.read(read)
    offered = result.options[result.recommended].max_points
    deps.metrics.quoted.labels(program.id).inc(offered)
    return result
