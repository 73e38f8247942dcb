"""Readable text for the CLI: each response as a few aligned lines and tables."""

import re
from collections.abc import Iterable, Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import redemption_pb2
from loyalty.v1 import redemption_service_pb2 as redemption_pb

# What each binding constraint means for the shopper, after its name.
CONSTRAINTS = {
    "NONE": "no single limit: several bind at once",
    "NO_ELIGIBLE_LINES": "no line of the cart can take points",
    "PROMO_CONFLICT": "this option keeps the promo code, which excludes points",
    "TIER_CAP": "the tier's redeem cap (a share of the eligible base)",
    "SOURCE_CAP": "a per-source cap (a share of the eligible base)",
    "BALANCE": "the customer's spendable balance",
    "LINE_GRANULARITY": "whole points per line (a line takes at most its net in points)",
}
SELECTION = {
    "ANY_UP_TO_MAX": "any amount up to the maximum",
    "ALL_OR_NOTHING": "exactly the maximum, or nothing",
}


def enum_name(enum: object, value: int) -> str:
    """`BINDING_CONSTRAINT_TIER_CAP` → `TIER_CAP`: the value's name less the enum's prefix."""
    descriptor = enum.DESCRIPTOR  # type: ignore[attr-defined]
    found = descriptor.values_by_number.get(value)
    if found is None:
        return str(value)
    prefix = descriptor.values[0].name.removesuffix(
        "UNSPECIFIED"
    )  # buf lint: zero is X_UNSPECIFIED
    return str(found.name).removeprefix(prefix)


def money(minor: int, currency: str = "") -> str:
    """Minor units as a decimal amount with two places (both programs are in RUB)."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole:,}.{cents:02d}" + (f" {currency}" if currency else "")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def when(stamp: Timestamp) -> str:
    """An ISO-8601 instant in UTC, or "-" when unset."""
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return stamp.ToJsonString()


# Right-aligned: ints, signed numbers and money; ids such as line "1" stay text.
NUMBER = re.compile(r"^([+-][\d,]+|-?[\d,]+\.\d\d)$")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], indent: str = "  ") -> str:
    """Aligned columns; numbers right-aligned, text left-aligned."""
    cells = [[str(c) for c in headers]]
    numeric = [True] * len(headers)
    for row in rows:
        cells.append([str(c) for c in row])
        for i, c in enumerate(row):
            numeric[i] = numeric[i] and (isinstance(c, int) or bool(NUMBER.match(str(c))))
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(r, widths, numeric, strict=True)
        ]
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def fields(pairs: Iterable[tuple[str, object]], indent: str = "  ") -> str:
    """`label   value` lines, labels padded to one width."""
    pairs = list(pairs)
    width = max(len(label) for label, _ in pairs)
    return "\n".join(f"{indent}{label.ljust(width)}  {value}" for label, value in pairs)


def allocations(items: Iterable[redemption_pb2.LineAllocation], currency: str) -> str:
    rows = [(a.line_id, a.points, money(a.discount_minor)) for a in items]
    if not rows:
        return "  (no line takes points)"
    return table(("line", "points", f"discount {currency}".rstrip()), rows)


def quote(
    response: redemption_pb.QuoteRedemptionResponse,
    *,
    program_id: str,
    customer_id: str,
    currency: str,
) -> str:
    out = [
        f"{program_id} · customer {customer_id} · tier {response.tier_id} · "
        f"{response.spendable_points} points spendable"
    ]
    for index, option in enumerate(response.options):
        recommended = index == response.recommended_option and len(response.options) > 1
        out += [
            "",
            _option_title(index, option, promo=len(response.options) > 1, recommended=recommended),
        ]
        out.append(_option_body(option, currency))
    return "\n".join(out)


def _option_title(
    index: int, option: redemption_pb2.RedemptionOption, *, promo: bool, recommended: bool
) -> str:
    if option.keeps_promo:
        what = "keep the promo code, spend no points"
    else:
        what = "drop the promo code, spend points" if promo else "spend points"
    title = f"option {index}: {what}"
    return title + ("  ← recommended: the shopper pays less" if recommended else "")


def _option_body(option: redemption_pb2.RedemptionOption, currency: str) -> str:
    binding = enum_name(redemption_pb2.BindingConstraint, option.binding_constraint)
    selection = enum_name(redemption_pb2.SelectionMode, option.selection_mode)
    body = fields(
        [
            (
                "max points",
                f"{option.max_points} (discount {money(option.max_discount_minor, currency)})",
            ),
            ("binding", f"{binding}: {CONSTRAINTS.get(binding, '')}".rstrip(": ")),
            *([("why", option.explanation)] if option.explanation else []),
            ("selection", f"{selection}: {SELECTION.get(selection, '')}".rstrip(": ")),
            ("eligible base", money(option.eligible_base_minor, currency)),
            ("payable", f"{money(option.payable_minor, currency)} (delivery included)"),
            ("points to earn", option.points_to_earn),
        ]
    )
    parts = [body, "", allocations(option.allocations, currency)]
    if option.excluded_lines:
        excluded = [(e.line_id, e.rule_id, e.explanation) for e in option.excluded_lines]
        parts += ["", table(("excluded line", "rule", "why"), excluded)]
    return "\n".join(parts)


def redemption(item: redemption_pb2.Redemption, currency: str = "") -> str:
    currency = item.currency or currency  # a server before 0.2 does not say its currency
    state = enum_name(redemption_pb2.RedemptionState, item.state)
    pairs: list[tuple[str, object]] = [
        ("points", f"{item.points} (discount {money(item.discount_minor, currency)})"),
        ("reversed so far", item.points_reversed),
        ("created at", when(item.created_at)),
    ]
    # The deadline means something only while the points are held.
    if item.state == redemption_pb2.REDEMPTION_STATE_HELD and item.HasField("hold_expires_at"):
        pairs.append(("hold expires at", when(item.hold_expires_at)))
    head = f"order {item.order_id} · customer {item.customer_id} · {state}"
    return "\n".join([head, fields(pairs), "", allocations(item.allocations, currency)])


def applied(response: redemption_pb.ApplyRedemptionResponse, *, currency: str) -> str:
    return "\n".join(
        [
            redemption(response.redemption, currency),
            "",
            f"balance after: {response.balance_after} points spendable",
        ]
    )


def captured(response: redemption_pb.CaptureRedemptionResponse) -> str:
    return "\n".join(
        [
            redemption(response.redemption),
            "",
            f"balance after: {response.balance_after} points spendable",
        ]
    )


def reversed_(response: redemption_pb.ReverseRedemptionResponse, *, order_id: str) -> str:
    state = (
        enum_name(redemption_pb2.RedemptionState, response.redemption.state)
        if response.HasField("redemption")
        else "no redemption"
    )
    return f"order {order_id} · {state}\n" + fields(
        [
            ("points returned", response.points_returned),
            ("points clawed back", response.points_clawed_back),
            ("debt added", response.debt_points),
            ("balance after", f"{response.balance_after} points spendable"),
        ]
    )


def granted(response: account_pb.GrantPointsResponse) -> str:
    return fields(
        [
            ("points granted", response.points),
            ("balance after", f"{response.balance_after} points spendable"),
            ("debt still owed", response.debt_points),
        ],
        indent="",
    )


def accrued(response: account_pb.AccrueOrderResponse, *, order_id: str) -> str:
    return f"order {order_id}\n" + fields(
        [
            ("points earned", response.points),
            ("available at", when(response.available_at)),
            (
                "expires at",
                when(response.expires_at) if response.HasField("expires_at") else "never",
            ),
        ]
    )


def account(response: account_pb.GetAccountResponse, *, program_id: str, customer_id: str) -> str:
    expiry = (
        f"{response.next_expiry.points} points at {when(response.next_expiry.expires_at)}"
        if response.HasField("next_expiry")
        else "none"
    )
    name = f" «{response.tier_name}»" if response.tier_name else ""
    tier = (
        f"{response.tier_id}{name} (qualifying: {money(response.qualifying_spend_minor)} "
        f"over {plural(response.qualifying_orders, 'order')})"
    )
    pairs: list[tuple[str, object]] = [
        ("spendable", response.spendable_points),
        ("pending", response.pending_points),
        ("held", response.held_points),
        ("debt", response.debt_points),
        ("next expiry", expiry),
        ("tier", tier),
    ]
    if response.HasField("next_tier"):
        nxt = response.next_tier
        pairs.append(
            (
                "next tier",
                f"{nxt.tier_id}: {money(nxt.missing_spend_minor)} more spend "
                f"and {plural(nxt.missing_orders, 'more order')}",
            )
        )
        if nxt.explanation:
            pairs.append(("needs", nxt.explanation))
    out = [f"{program_id} · customer {customer_id}", fields(pairs)]
    if response.balances_by_source:
        rows = sorted(response.balances_by_source.items())
        out += ["", table(("source", "spendable"), rows)]
    return "\n".join(out)


def ledger(entries: Sequence[account_pb.LedgerEntry]) -> str:
    if not entries:
        return "no ledger entries"
    rows = [
        (
            when(e.effective_at),
            enum_name(account_pb.LedgerEntryKind, e.kind),
            f"{e.points:+d}",
            e.source or "-",
            e.order_id or "-",
            e.reason or "-",
        )
        for e in entries
    ]
    total = sum(e.points for e in entries)
    return table(
        ("effective at", "kind", "points", "source", "order", "reason"), rows, indent=""
    ) + (f"\n{len(entries)} entries, sum {total:+d}")
