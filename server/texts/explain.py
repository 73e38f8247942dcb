"""Sentences from what the quote, the tier status or an error already decided (docs/rules.md §10).

Nothing here computes a limit again: every number comes from the decision it explains.
"""

from pricing.caps import Constraint
from pricing.eligibility import ExcludedLine
from pricing.errors import Violation
from pricing.program import SERVICES_RULE_ID, Program
from pricing.quote import Option
from pricing.tiers import TierStatus
from server.texts.catalogue import KNOWN
from server.texts.texts import Texts

# Errors whose counted values are units of a line rather than points.
_UNIT_ERRORS = frozenset({"EXCEEDS_REMAINING"})


def option_explanation(
    texts: Texts,
    program: Program,
    option: Option,
    *,
    tier_id: str,
    spendable_points: int,
    promo_code: str,
) -> str:
    """Why the option's maximum is what it is, naming the binding constraint's numbers."""
    binding = option.binding
    if binding is Constraint.NO_ELIGIBLE_LINES:
        return texts.say("binding.NO_ELIGIBLE_LINES")
    if binding is Constraint.PROMO_CONFLICT:
        return texts.say(
            "binding.PROMO_CONFLICT",
            promo_code=promo_code,
            payable=texts.money(option.payable_minor),
        )
    points = texts.points(option.max_points)
    rates, caps = option.rates, option.caps
    if rates is None or caps is None or binding is Constraint.NONE:
        return texts.say("binding.NONE", points=points)
    base = texts.money(option.eligible_base_minor)
    if binding is Constraint.TIER_CAP:
        percent = texts.percent(rates.total_bp)
        if rates.payment_method is not None:
            method = program.payment_methods[rates.payment_method]
            return texts.say(
                "binding.TIER_CAP.payment_method",
                method=texts.name(method.names, method.id),
                percent=percent,
                base=base,
                points=points,
            )
        tier = program.tier(tier_id)
        name = texts.name(tier.names, tier.id)
        return texts.say("binding.TIER_CAP", tier=name, percent=percent, base=base, points=points)
    if binding is Constraint.SOURCE_CAP:
        return _source_cap(texts, program, option, base=base, points=points)
    if binding is Constraint.BALANCE:
        return texts.say("binding.BALANCE", balance=texts.points(spendable_points), points=points)
    return texts.say("binding.LINE_GRANULARITY", points=points)


def _source_cap(texts: Texts, program: Program, option: Option, *, base: str, points: str) -> str:
    """The first source (by id) whose own cap, not its balance, held it back."""
    assert option.rates is not None and option.caps is not None
    capped = option.caps.capped_sources()
    if not capped:
        return texts.say("binding.NONE", points=points)
    source_id = capped[0]
    bp, cap = option.rates.source_bp[source_id], option.caps.source_caps[source_id]
    assert bp is not None and cap is not None  # a capped source has both
    source = program.sources[source_id]
    return texts.say(
        "binding.SOURCE_CAP",
        source=texts.name(source.names, source_id),
        percent=texts.percent(bp),
        base=base,
        cap=texts.points(cap),
        points=points,
    )


def excluded_explanation(texts: Texts, program: Program, line: ExcludedLine) -> str:
    """Why the line takes no points: the rule's name in words, else what it matched."""
    if line.rule_id == SERVICES_RULE_ID or (line.matched == "kind" and line.value == "SERVICE"):
        return texts.say("excluded.services")
    rule = next((r for r in program.exclusions if r.id == line.rule_id), None)
    if rule is not None and texts.language in rule.names:
        return texts.say("excluded.rule", rule=rule.names[texts.language])
    if line.matched == "kind":
        return texts.say("excluded.goods")
    if f"excluded.{line.matched}" in KNOWN:
        return texts.say(f"excluded.{line.matched}", value=line.value)
    return texts.say("excluded.rule", rule=line.rule_id)


def tier_name(texts: Texts, program: Program, tier_id: str) -> str:
    tier = program.tier(tier_id)
    return texts.name(tier.names, tier.id)


def next_tier_explanation(texts: Texts, status: TierStatus) -> str:
    """What is still missing for the next tier («Ещё 2 заказа и 15 000,00 ₽ до уровня …»)."""
    assert status.next_tier is not None
    tier = texts.name(status.next_tier.names, status.next_tier.id)
    orders = texts.count("orders", status.missing_orders)
    spend = texts.money(status.missing_spend_minor)
    if status.missing_orders and status.missing_spend_minor:
        return texts.say("next_tier.orders_and_spend", orders=orders, spend=spend, tier=tier)
    if status.missing_orders:
        return texts.say("next_tier.orders", orders=orders, tier=tier)
    return texts.say("next_tier.spend", spend=spend, tier=tier)


def error_message(texts: Texts, error: Exception, reason: str) -> str:
    """The error as one sentence for the shopper, with the facts the error carries."""
    message_id = f"error.{reason}"
    if message_id not in texts.templates:
        return str(error)
    values: dict[str, str] = {}
    for name in KNOWN[message_id]:
        value = getattr(error, name, "")
        if name == "field":  # the first offending field of a BadRequest
            violations = getattr(error, "violations", None) or [Violation("", "")]
            value = violations[0].field
        if isinstance(value, int) and not isinstance(value, bool):
            value = texts.count("units" if reason in _UNIT_ERRORS else "points", value)
        values[name] = str(value)
    return texts.say(message_id, **values)


class QuoteWords:
    """The sentences of one quote's answer, for convert.quote_response."""

    def __init__(self, texts: Texts, program: Program, *, promo_code: str) -> None:
        self.texts = texts
        self.program = program
        self.promo_code = promo_code

    def option(self, option: Option, *, tier_id: str, spendable_points: int) -> str:
        return option_explanation(
            self.texts,
            self.program,
            option,
            tier_id=tier_id,
            spendable_points=spendable_points,
            promo_code=self.promo_code,
        )

    def excluded(self, line: ExcludedLine) -> str:
        return excluded_explanation(self.texts, self.program, line)
