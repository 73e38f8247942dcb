"""QuoteRedemption: a read; it writes nothing."""

from datetime import datetime

from pricing.program import Program, Tier
from pricing.quote import Quote, check_currency, quote
from server.service import commands
from server.service.account_state import AccountState, state_on_loop
from server.service.deps import Deps
from server.service.ports import UnitOfWork
from server.service.tiers import needs_tier_lookup
from server.store.loop_pool import LoopReadFailed


def quote_redemption(deps: Deps, command: commands.QuoteRedemption, *, now: datetime) -> Quote:
    program = deps.program(command.program_id)
    check_currency(program, command.cart)

    def read(uow: UnitOfWork) -> Quote:
        customer = command.customer_id
        state = uow.accounts.read(program_id=program.id, customer_id=customer, now=now)
        tier = uow.accounts.pricing_tier(program, customer_id=customer, now=now)
        return _priced(program, command, state, tier)

    result = deps.store.read(read)
    return _counted(deps, program, result)


async def quote_on_loop(
    deps: Deps, command: commands.QuoteRedemption, *, now: datetime
) -> Quote | None:
    """The same quote, its one statement awaited on the event loop (PostgreSQL); None when
    it reads more than that (holds, a tier to look up) or the database did not answer it
    there: `quote_redemption` answers then, on a worker thread."""
    program = deps.program(command.program_id)
    check_currency(program, command.cart)
    if deps.loop_pool is None or needs_tier_lookup(program):
        return None
    try:
        state = await state_on_loop(
            deps.loop_pool, program_id=program.id, customer_id=command.customer_id, now=now
        )
    except LoopReadFailed:
        return None  # the database did not answer here: the worker thread's read will tell
    if state is None:
        return None
    return _counted(deps, program, _priced(program, command, state, program.tiers[0]))


def _priced(
    program: Program, command: commands.QuoteRedemption, state: AccountState, tier: Tier
) -> Quote:
    return quote(
        program,
        cart=command.cart,
        tier=tier,
        payment_method=command.payment_method,
        buckets=state.spendable(),
        now=state.now,
    )


def _counted(deps: Deps, program: Program, result: Quote) -> Quote:
    offered = result.options[result.recommended].max_points
    deps.metrics.quoted.labels(program.id).inc(offered)
    return result
