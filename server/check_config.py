"""`loyalty-server check-config`: validate program files and say what each allows."""

from decimal import Decimal
from pathlib import Path

from babel.numbers import get_currency_precision

from pricing.money import BP_WHOLE
from pricing.program import Program, ProgramConfigError, load_programs
from server.texts.texts import Languages


def _percent(bp: int) -> str:
    return f"{bp * 100 / BP_WHOLE:g} %"


def _money(minor: int, currency: str) -> str:
    """Minor units in the currency's own digits (ISO 4217 via Babel: RUB 2, JPY 0, KWD 3)."""
    digits = get_currency_precision(currency)
    return f"{Decimal(minor).scaleb(-digits):,.{digits}f} {currency}"


def describe(program: Program) -> str:
    """A plain summary for a person editing the file."""
    cur = program.currency
    out = [
        f"{program.id} (version {program.version}): {program.name}",
        f"  currency {cur}; 1 point = {_money(program.point_value_minor, cur)}; "
        f"days in {program.time_zone}",
        f"  selection {program.selection_mode.value}; promo codes {program.promo_policy.value}; "
        f"services {'may' if program.services_redeemable else 'may not'} be paid with points",
        f"  accrual: source {program.accrual_source}, spendable "
        f"{program.accrual_delay_days} days after delivery",
        f"  tiers over {program.tier_window_days} days:",
    ]
    for tier in program.tiers:
        needs = (
            f"from {tier.min_orders} orders and {_money(tier.min_spend_minor, cur)}"
            if tier.min_orders or tier.min_spend_minor
            else "everyone"
        )
        out.append(
            f"    {tier.id}: earns {_percent(tier.earn_rate_bp)}, points pay up to "
            f"{_percent(tier.redeem_cap_bp)} of eligible goods ({needs})"
        )
    out.append("  sources:")
    for source in program.sources.values():
        expiry = (
            "never expire"
            if source.expiry_days is None
            else (f"expire {source.expiry_days} days after they become spendable")
        )
        cap = "" if source.cap_bp is None else f", capped at {_percent(source.cap_bp)}"
        out.append(f"    {source.id}: {expiry}{cap}")
    for method in program.payment_methods.values():
        sources = ", ".join(f"{s} {_percent(bp)}" for s, bp in method.source_cap_bp.items())
        other = (
            ""
            if method.other_sources_cap_bp is None
            else (f", other sources {_percent(method.other_sources_cap_bp)}")
        )
        out.append(
            f"  paying with {method.id}: total up to {_percent(method.redeem_cap_bp)}"
            f"{'; ' + sources if sources else ''}{other}"
        )
    for rule in program.exclusions:
        what = [
            f"{label} {', '.join(sorted(values))}"
            for label, values in (
                ("categories", rule.categories),
                ("brands", rule.brands),
                ("skus", rule.skus),
                ("tags", rule.tags),
                ("kinds", {k.value for k in rule.kinds}),
            )
            if values
        ]
        out.append(f"  excluded from points by rule {rule.id!r}: {'; '.join(what)}")
    return "\n".join(out)


def describe_texts(program: Program, languages: Languages) -> str:
    """What shoppers read: the languages, the names by language, the program's own wording."""
    offered = languages.offered(program.id)
    out = [f"  languages {', '.join(offered)} (default {program.default_language})"]
    named = [
        *(("tier", tier.id, tier.names) for tier in program.tiers),
        *(("source", source.id, source.names) for source in program.sources.values()),
        *(("paying with", m.id, m.names) for m in program.payment_methods.values()),
        *(("rule", rule.id, rule.names) for rule in program.exclusions),
    ]
    for kind, item_id, names in named:
        shown = "; ".join(f"{lang} {names.get(lang, item_id)!r}" for lang in offered)
        out.append(f"    {kind} {item_id}: {shown}")
    for language, overrides in program.texts.items():
        for message_id, text in overrides.items():
            out.append(f"    text {language} {message_id}: {text!r}")
    return "\n".join(out)


def check_config(directory: Path) -> tuple[int, str]:
    """Exit code and report: 0 with a summary of every program, or 1 with the error."""
    try:
        programs = load_programs(directory)
        languages = Languages(programs)
    except ProgramConfigError as exc:
        return 1, f"invalid: {exc}"
    if not programs:
        return 1, f"invalid: {directory}: no *.toml program files"
    summaries = [
        describe(program) + "\n" + describe_texts(program, languages)
        for program in programs.values()
    ]
    return 0, "\n\n".join(summaries) + f"\n\n{len(programs)} program(s) OK in {directory}"
