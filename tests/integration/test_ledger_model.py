"""The earning side against an in-memory model, on PostgreSQL (docs/rules.md §4–§7, issue 4).

A Hypothesis state machine drives the use cases in-process (no gRPC) for two
customers of `stomatorg`: grants of every source (at once or later, with the
source's expiry or an explicit one), applies (within and above the maximum),
accruals (of orders that spent points or not, already matured or pending; of
the whole order or of some of its lines, the others cancelled before delivery;
during a hold, captured after), reverses (whole and by lines, in several
steps, and one unit too many; lines with only points, only an accrual, or
both), holds released when payment fails and the retry that spends again as a
new redemption, the other customer naming an order (its accrual or apply
refused, ORDER_CUSTOMER_MISMATCH), idempotent replays, the clock moving forward
by hours up to ~100 days (and exactly onto, or one microsecond before, a
maturity or expiry instant), and the expiry job. A customer may start in debt,
so that credits have debt to pay. Some moves aim at what random steps seldom
reach: a spend from several buckets of which a part comes back, at once or
once a bucket expired (which bucket is refilled first, and whether it stays
expired); reads at the instant an accrual nobody has touched since its delivery
expires (the reads decide maturity and expiry themselves); a return days after
delivery, before the accrual matured (when its CLAWBACK counts); the expiry job some
hours after an expiry (the date its entry carries); dear units spent on at the
maximum and delivered a unit short (the points on the undelivered unit change
what is earned by whole points).

The model below is written from docs/rules.md, not from the server's code:

* a bucket per credit, spendable while `available_at ≤ t < expires_at`;
* spending takes buckets first-expiring-first (never-expiring last, ties by
  creation order); a line's share of a redemption is the largest-remainder
  split of docs/rules.md §4; the most an order can take is the base tier's 3 % of
  the eligible base, the balance, and the lines' granularity;
* an accrual earns 3 % of the goods' net minus the points spent on them,
  is pending 7 days and expires 90 days after maturity;
* every credit pays debt first: a grant at the call, an accrual when it
  matures, points a reversal returns;
* a return gives back floor(P × K / n) cumulatively per line, into the
  buckets the points came from latest-expiring first (an expired bucket's
  points stay expired), and takes back what the units earned: from the
  order's own bucket, then other spendable buckets first-expiring-first,
  and the rest as debt;
* the expiry job writes one EXPIRY entry per bucket with points left once
  it expired, effective at its `expires_at`.

Two readings of docs/rules.md §6 the model states outright: points a return sends
into a bucket that has expired stay expired, so — worth nothing — they pay no
debt (the live ones pay it first); and an accrual is taken back from its own
bucket whether pending, spendable or expired (points that expired there were
never spent, so only the spent ones are taken from other buckets or as debt).

After every step the machine checks GetAccount (spendable, pending, debt,
balances by source, next expiry, tier) against the model, every bucket of
the database against the model's (remaining ≥ 0, what expired), and the
ledger as ListLedgerEntries pages it: the entries effective up to the clock
sum to spendable − debt plus the points whose bucket expired but that the job
has not written down yet — which is docs/rules.md §7's `spendable − debt`, exactly,
once the job ran at the clock (checked to the letter then).

Customers stay in the base tier (checked): an accrual that would bring their
orders to 95,000 ₽ is not made, and the 100,000 ₽ orders that drain a balance
are never accrued.

That the model catches what it is there to catch is checked by planting bugs in
a scratch copy of the code and running it there: `python -m
tests.support.planted_bugs` (see that module for the list: spend, tie and
restore orders, the expiry boundary, debt paid at maturity and by grants,
returns into expired buckets, clawback from the own bucket, floor on returns,
earning on points spent, EXPIRY and CLAWBACK dates, and issue 12's customer
check, retry after release, held points and part accruals; the last result is
in docs/testing.md). That check runs 40 examples, the same ones each time;
`make test` runs 10 random ones.
"""

import os
import pickle
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, text

from pricing.cart import Cart, CartLine, LineKind
from pricing.errors import (
    ExceedsMaximum,
    ExceedsRemaining,
    OrderAlreadyRedeemed,
    OrderCustomerMismatch,
)
from pricing.program import load_programs
from pricing.reversal import ReturnedLine
from server.reconcile import reconcile
from server.service import commands
from server.service.accrue import accrue_order
from server.service.apply import apply_redemption
from server.service.capture import capture_redemption
from server.service.deps import Deps
from server.service.expire import expire_points
from server.service.grant import grant_points
from server.service.reads import get_account, list_ledger_entries
from server.service.reverse import reverse_redemption
from server.store.db import Database, create_database_engine
from server.store.ledger import LedgerEntry
from server.store.migrate import migrate
from server.store.schema import buckets, ledger_entries, metadata
from tests.support.databases import fresh_postgres

# A failure takes longer than a pass: Hypothesis shrinks it for up to 5 minutes (each step
# is a few database round trips), and the timeout lets it finish. The planted-bug check's
# longer pass sets its own timeout.
PLANTED_RUN = os.environ.get("LEDGER_MODEL_PLANTED") == "1"
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(3_600 if PLANTED_RUN else 420)]

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
PROGRAM = "stomatorg"
START = datetime(2031, 1, 5, 9, 0, tzinfo=UTC)

# Stomatorg as docs/rules.md §5 states it (base tier only: see the module docstring).
POINT = 100  # minor units per point
REDEEM_CAP_BP = 300
EARN_RATE_BP = 300
ACCRUAL_DELAY = timedelta(days=7)
EXPIRY_DAYS: dict[str, int | None] = {"loyalty": 90, "promo": 90, "action": None}
NO_POINTS_TAG = "no_points"
# `regular` needs 100,000 ₽ of matured orders: a customer's accruals stay under 95,000 ₽.
TIER_GUARD_MINOR = 9_500_000
FAR = datetime.max.replace(tzinfo=UTC)
# `make test` runs a short pass. The planted-bug check (tests/support/planted_bugs.py,
# docs/testing.md) runs a longer one, the same examples every time (a bug caught is caught
# again on the same tree), and only needs to know that the model fails: no shrinking.
RUN: dict[str, Any] = (
    {
        "max_examples": 40,
        "derandomize": True,
        "phases": (Phase.explicit, Phase.generate),
        "database": None,
    }
    if PLANTED_RUN
    else {"max_examples": 10}
)


# ---- the model ------------------------------------------------------------------------


@dataclass
class MBucket:
    seq: int  # creation order (the database's bucket ids grow the same way)
    source: str
    granted: int
    remaining: int
    available_at: datetime
    expires_at: datetime | None
    settled: bool = True  # False: an accrual, which pays debt when it matures
    paid_at_maturity: int = 0  # what it paid the debt when it matured
    written_expired: int = 0  # points written down as EXPIRY (job, or a return into it)

    def spendable_at(self, t: datetime) -> bool:
        return self.available_at <= t and (self.expires_at is None or t < self.expires_at)

    def expired_at(self, t: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= t

    def spend_order(self) -> tuple[bool, datetime, int]:
        """First-expiring-first; never-expiring last; ties by creation order."""
        return (self.expires_at is None, self.expires_at or FAR, self.seq)


@dataclass
class MDebit:
    bucket: MBucket
    taken: int
    returned: int = 0


@dataclass
class MOrder:
    order_id: str
    customer: int
    cart: Cart
    spent: dict[str, int] | None = None  # redemption: points per line
    debits: list[MDebit] = field(default_factory=list)
    earned: dict[str, int] | None = None  # accrual: points per line
    own_bucket: MBucket | None = None
    returned: dict[str, int] = field(default_factory=dict)  # units returned per line
    accruable: bool = True
    delivered: dict[str, int] = field(default_factory=dict)  # accrual: units per line

    def units_left(self, line: CartLine) -> int:
        return line.quantity - self.returned.get(line.line_id, 0)

    def spent_on_delivered(self, delivered: CartLine) -> int:
        """Points spent on the units delivered, counted as a return of the undelivered
        ones would count them (docs/rules.md §6): P − floor(P × (n − d) / n)."""
        points = (self.spent or {}).get(delivered.line_id, 0)
        bought = next(x for x in self.cart.lines if x.line_id == delivered.line_id).quantity
        return points - points * (bought - delivered.quantity) // bought

    def earned_units(self, line: CartLine, returned: int) -> int:
        """Units of the accrual's line gone after `returned` units of the order's line came
        back: the undelivered units come back first (they earned nothing)."""
        delivered = self.delivered.get(line.line_id, line.quantity)
        return min(delivered, max(0, returned - (line.quantity - delivered)))


@dataclass
class MAccount:
    buckets: list[MBucket] = field(default_factory=list)
    debt: int = 0

    def spendable(self, t: datetime) -> list[MBucket]:
        live = [b for b in self.buckets if b.remaining > 0 and b.spendable_at(t)]
        return sorted(live, key=MBucket.spend_order)

    def spendable_points(self, t: datetime) -> int:
        return sum(b.remaining for b in self.spendable(t))

    def pending_points(self, t: datetime) -> int:
        return sum(b.remaining for b in self.buckets if t < b.available_at)

    def unwritten_expired(self, t: datetime) -> int:
        """Points of expired buckets the expiry job has not written down yet."""
        return sum(b.remaining for b in self.buckets if b.expired_at(t))

    def by_source(self, t: datetime) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.spendable(t):
            out[b.source] = out.get(b.source, 0) + b.remaining
        return out

    def next_expiry(self, t: datetime) -> tuple[datetime, int] | None:
        expiring = [b for b in self.spendable(t) if b.expires_at is not None]
        if not expiring:
            return None
        first = min(b.expires_at for b in expiring if b.expires_at is not None)
        return first, sum(b.remaining for b in expiring if b.expires_at == first)

    def mature(self, t: datetime) -> None:
        """Accruals that matured by `t` pay the debt, in the order they matured."""
        due = [b for b in self.buckets if not b.settled and b.available_at <= t]
        for b in sorted(due, key=lambda b: (b.available_at, b.seq)):
            pay = min(b.remaining, self.debt)
            if pay:
                event("an accrual paid debt when it matured")
            b.remaining -= pay
            b.paid_at_maturity = pay
            self.debt -= pay
            b.settled = True


def net(line: CartLine) -> int:
    return line.quantity * line.unit_price_minor - line.discount_minor - line.promo_discount_minor


def eligible(line: CartLine) -> bool:
    """Stomatorg: services and `no_points` goods take no points (docs/rules.md §5 table)."""
    return line.kind is LineKind.GOODS and NO_POINTS_TAG not in line.tags


def largest_remainder(total: int, weights: list[int], room: list[int] | None = None) -> list[int]:
    """docs/rules.md §4: proportional whole parts, largest remainders first, ties to the earlier
    part; what a part has no room for is split again over the parts that still have room."""
    parts = [0] * len(weights)
    left_room = list(room) if room is not None else [total] * len(weights)
    left = total
    while left:
        open_ = [i for i, w in enumerate(weights) if w > 0 and left_room[i] > 0]
        assert open_, "nothing can take the rest"
        weight = sum(weights[i] for i in open_)
        share = {i: left * weights[i] // weight for i in open_}
        by_remainder = sorted(open_, key=lambda i: (-(left * weights[i] % weight), i))
        for i in by_remainder[: left - sum(share.values())]:
            share[i] += 1
        left = 0
        for i in open_:
            give = min(share[i], left_room[i])
            parts[i] += give
            left_room[i] -= give
            left += share[i] - give
    return parts


def maximum(cart: Cart, account: MAccount, t: datetime) -> int:
    lines = [line for line in cart.lines if eligible(line)]
    base = sum(net(line) for line in lines)
    if base == 0:
        return 0
    tier_cap = base * REDEEM_CAP_BP // 10_000 // POINT
    granularity = sum(net(line) // POINT for line in lines)
    return min(tier_cap, account.spendable_points(t), granularity)


def take_first_expiring(account: MAccount, points: int, t: datetime, skip: object = None) -> int:
    """Take up to `points` from spendable buckets first-expiring-first; returns what's missing."""
    for b in account.spendable(t):
        if points == 0:
            break
        if b is skip:
            continue
        take = min(points, b.remaining)
        b.remaining -= take
        points -= take
    return points


def cumulative(points: int, before: int, now: int, of: int) -> int:
    """docs/rules.md §6: after K of n units, floor(P × K / n) have moved; what this step moves."""
    return points * now // of - points * before // of


# ---- the machine -----------------------------------------------------------------------


@dataclass(frozen=True)
class Harness:
    deps: Deps
    db: Database


HARNESS: list[Harness] = []  # set by the test before the machine runs
EXAMPLES = [0]  # machines started so far in this test


def unpickle(answer: bytes) -> Any:
    return pickle.loads(answer)


line_strategy = st.tuples(
    st.integers(1, 3),  # quantity
    st.integers(1, 2_000),  # unit price in roubles
    st.sampled_from(["goods", "goods", "goods", "service", "no_points"]),
    st.sampled_from([0, 0, 0, 1_000, 3_333, 9_999]),  # markdown, basis points of the gross
)
cart_strategy = st.lists(line_strategy, min_size=1, max_size=3)
# Clock steps: hours, days, and leaps over maturity (7 d) and expiry (90 d after it).
hours_strategy = st.one_of(
    st.integers(1, 72), st.integers(1, 24 * 10), st.sampled_from([24 * 7, 24 * 30, 24 * 45])
)


def one_unit_less(line: CartLine) -> CartLine:
    """A line of two or more units delivered one short: its discount over the units
    delivered, rounded down (docs/rules.md §6 takes floor or ceil)."""
    if line.quantity < 2:
        return line
    units = line.quantity - 1
    return replace(
        line, quantity=units, discount_minor=line.discount_minor * units // line.quantity
    )


def make_cart(spec: list[tuple[int, int, str, int]]) -> Cart:
    lines = []
    for n, (quantity, roubles, kind, markdown_bp) in enumerate(spec, start=1):
        gross = quantity * roubles * POINT
        lines.append(
            CartLine(
                line_id=f"l{n}",
                quantity=quantity,
                unit_price_minor=roubles * POINT,
                sku=f"sku-{n}",
                category="dental",
                tags=(NO_POINTS_TAG,) if kind == "no_points" else (),
                kind=LineKind.SERVICE if kind == "service" else LineKind.GOODS,
                discount_minor=gross * markdown_bp // 10_000,
            )
        )
    return Cart(currency="RUB", lines=tuple(lines))


class LedgerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        harness = HARNESS[0]
        self.deps, self.db = harness.deps, harness.db
        EXAMPLES[0] += 1
        with self.db.engine.begin() as connection:
            # every table of account data; the service's own keys stay
            names = ", ".join(
                f'"{t.name}"' for t in metadata.sorted_tables if t.name != "service_secrets"
            )
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        self.tag = uuid.uuid4().hex[:8]
        self.customers = [f"cust-{self.tag}-{i}" for i in range(2)]
        self.accounts = [MAccount(), MAccount()]
        self.orders: list[MOrder] = []
        self.now = START
        self.expired_up_to: datetime | None = None
        self.accrued_minor = [0, 0]
        self.seen_entry = 0
        self.seq = 0
        self.requests = 0
        self.last: tuple[Callable[..., bytes], Any, bytes] | None = None

    # ---- helpers ----

    def key(self) -> commands.Idempotency:
        self.requests += 1
        request_id = f"req-{self.tag}-{self.requests}"
        return commands.Idempotency(request_id, request_id.encode())

    def new_bucket(self, account: MAccount, **values: Any) -> MBucket:
        self.seq += 1
        bucket = MBucket(seq=self.seq, **values)
        account.buckets.append(bucket)
        return bucket

    def call(self, use_case: Callable[..., bytes], command: Any) -> Any:
        answer = use_case(self.deps, command, now=self.now, render=pickle.dumps)
        self.last = (use_case, command, answer)
        return unpickle(answer)

    # ---- rules ----

    @rule(
        who=st.integers(0, 1),
        points=st.integers(1, 400),
        source=st.sampled_from(["loyalty", "promo", "action"]),
        later=st.one_of(st.none(), st.integers(1, 24 * 10)),
        lasts=st.one_of(st.none(), st.none(), st.integers(1, 24 * 20)),
    )
    def grant(
        self, who: int, points: int, source: str, later: int | None, lasts: int | None
    ) -> None:
        account = self.accounts[who]
        available_at = self.now + timedelta(hours=later) if later else None
        expires_at = None
        if lasts is not None:
            expires_at = (available_at or self.now) + timedelta(hours=lasts)
        result = self.call(
            grant_points,
            commands.GrantPoints(
                key=self.key(),
                program_id=PROGRAM,
                customer_id=self.customers[who],
                points=points,
                source=source,
                available_at=available_at,
                expires_at=expires_at,
                reason="model",
            ),
        )
        # A grant pays debt when it becomes spendable (docs/rules.md §5): at the call, or, like an
        # accrual, when it matures.
        matures_later = available_at is not None and available_at > self.now
        to_debt = 0 if matures_later else min(points, account.debt)
        if to_debt:
            event("a grant paid debt")
        account.debt -= to_debt
        start = available_at or self.now
        if expires_at is None and EXPIRY_DAYS[source] is not None:
            expires_at = start + timedelta(days=EXPIRY_DAYS[source] or 0)
        self.new_bucket(
            account,
            source=source,
            granted=points,
            remaining=points - to_debt,
            available_at=start,
            expires_at=expires_at,
            settled=not matures_later,
        )
        assert (result.points, result.balance_after, result.debt_points) == (
            points,
            account.spendable_points(self.now),
            account.debt,
        )

    @initialize(
        points=st.lists(st.integers(0, 300), min_size=2, max_size=2),
        source=st.sampled_from(["loyalty", "promo", "action"]),
        in_debt=st.lists(st.booleans(), min_size=2, max_size=2),
    )
    def opening(self, points: list[int], source: str, in_debt: list[bool]) -> None:
        """Each customer starts with a balance, and perhaps with a debt (so that the
        rules that pay debt have some to pay): a matured accrual is spent with the rest
        of the balance on a big order, then its order is returned."""
        for who in (0, 1):
            if in_debt[who]:
                order = MOrder(
                    f"order-{self.tag}-opening-{who}", who, make_cart([(2, 1_500, "goods", 0)])
                )
                self.deliver(order, delivered_hours_ago=24 * 8)
            if points[who]:
                self.grant(who, points[who], source, later=None, lasts=None)
            if in_debt[who]:
                earned = self.orders[-1]
                self.apply(who, [], big=True, ask="max")
                returnable = [o for o in self.orders if o.spent is not None or o.earned is not None]
                self.reverse(returnable.index(earned), True, [], 1)
                assert self.accounts[who].debt == 90  # 3 % of 3,000 ₽, all of it spent

    @rule(
        who=st.integers(0, 1),
        spec=cart_strategy,
        big=st.sampled_from([False, False, True]),
        ask=st.sampled_from(["max", "max", "half", "one", "over"]),
    )
    def apply(self, who: int, spec: list[tuple[int, int, str, int]], big: bool, ask: str) -> None:
        """An order of the cart drawn, or one of 100,000 ₽ that can take the whole balance."""
        account = self.accounts[who]
        cart = make_cart([(1, 100_000, "goods", 0)] if big else spec)
        most = maximum(cart, account, self.now)
        points = {"max": most, "half": (most + 1) // 2, "one": 1, "over": most + 1}[ask]
        points = max(points, 1)
        # A big order is never accrued: customers stay in the base tier.
        order = MOrder(f"order-{self.tag}-{len(self.orders)}", who, cart, accruable=not big)
        command = commands.ApplyRedemption(
            key=self.key(),
            program_id=PROGRAM,
            customer_id=self.customers[who],
            order_id=order.order_id,
            cart=cart,
            payment_method="",
            points=points,
            hold_seconds=0,
        )
        event(f"apply: {'over the maximum' if points > most else 'within the maximum'}")
        if points > most:
            with pytest.raises(ExceedsMaximum):
                self.call(apply_redemption, command)
            return
        result = self.call(apply_redemption, command)
        self.orders.append(order)
        self.spend_on(order, points, result)

    def spend_on(self, order: MOrder, points: int, result: Any) -> None:
        """The model of an accepted apply (or hold) of `points` on `order`: buckets
        first-expiring-first, the allocation of docs/rules.md §4; checks the use case's answer."""
        account = self.accounts[order.customer]
        order.debits = []
        for b in account.spendable(self.now):
            take = min(points - sum(d.taken for d in order.debits), b.remaining)
            if take:
                b.remaining -= take
                order.debits.append(MDebit(b, take))
        assert sum(d.taken for d in order.debits) == points
        lines = [line for line in order.cart.lines if eligible(line)]
        shares = largest_remainder(
            points, [net(line) for line in lines], [net(line) // POINT for line in lines]
        )
        order.spent = {line.line_id: 0 for line in order.cart.lines}
        order.spent.update({line.line_id: s for line, s in zip(lines, shares, strict=True)})
        got = {line.line_id: line.points for line in result.redemption.lines}
        assert (result.redemption.points, got) == (points, order.spent)
        assert result.balance_after == account.spendable_points(self.now)

    def give_back(self, order: MOrder, points: int) -> int:
        """Spent (or held) points back to the buckets they came from, latest-expiring
        first. Into a bucket that has expired they stay expired: worth nothing, they pay
        no debt; the others pay debt first, in the same order. Returns what went back."""
        account = self.accounts[order.customer]
        left, restores = points, []
        for debit in sorted(order.debits, key=lambda d: d.bucket.spend_order(), reverse=True):
            give = min(left, debit.taken - debit.returned)
            left -= give
            debit.returned += give
            restores.append((debit.bucket, give))
        assert left == 0
        live = sum(give for bucket, give in restores if not bucket.expired_at(self.now))
        to_debt = min(account.debt, live)
        account.debt -= to_debt
        for bucket, give in restores:
            if bucket.expired_at(self.now):
                if give:
                    event("a return went into an expired bucket")
                bucket.written_expired += give  # stays expired (docs/rules.md §6)
                continue
            paid = min(to_debt, give)
            to_debt -= paid
            if paid:
                event("a return paid debt")
            bucket.remaining += give - paid
        return points

    @rule(
        who=st.integers(0, 1),
        pick=st.integers(0, 10**6),
        spec=cart_strategy,
        delivered_hours_ago=st.one_of(st.integers(0, 24 * 10), st.just(24 * 7)),
    )
    def accrue(
        self, who: int, pick: int, spec: list[tuple[int, int, str, int]], delivered_hours_ago: int
    ) -> None:
        # An order that spent points and has not been accrued or returned, or a new one.
        candidates = [
            o
            for o in self.orders
            if o.accruable and o.earned is None and o.spent is not None and not o.returned
        ]
        if candidates and pick % 3:
            order = candidates[pick % len(candidates)]
        else:
            order = MOrder(f"order-{self.tag}-{len(self.orders)}", who, make_cart(spec))
        self.deliver(order, delivered_hours_ago)

    def deliver(
        self,
        order: MOrder,
        delivered_hours_ago: int,
        lines: tuple[CartLine, ...] | None = None,
    ) -> None:
        """AccrueOrder for `order`, delivered that many hours before the clock: all of it,
        or only `lines` (whole; the others cancelled before delivery). A delivered line
        earns on its net minus the points spent on it (docs/rules.md §5, §6)."""
        if order.spent:
            event("accrual of an order that spent points")
        delivered = order.cart.lines if lines is None else lines
        goods = [line for line in delivered if line.kind is LineKind.GOODS]
        bases = [net(line) - order.spent_on_delivered(line) * POINT for line in goods]
        if self.accrued_minor[order.customer] + sum(bases) >= TIER_GUARD_MINOR:
            return  # the customer would move up a tier (not in the model)
        self.accrued_minor[order.customer] += sum(bases)
        if all(o is not order for o in self.orders):
            self.orders.append(order)
        account = self.accounts[order.customer]
        delivered_at = self.now - timedelta(hours=delivered_hours_ago)
        result = self.call(
            accrue_order,
            commands.AccrueOrder(
                key=self.key(),
                program_id=PROGRAM,
                customer_id=self.customers[order.customer],
                order_id=order.order_id,
                cart=Cart(currency="RUB", lines=delivered),
                delivered_at=delivered_at,
            ),
        )
        points = sum(bases) * EARN_RATE_BP // 10_000 // POINT
        order.delivered = {line.line_id: line.quantity for line in delivered}
        order.earned = {line.line_id: 0 for line in order.cart.lines}
        shares = largest_remainder(points, bases)
        order.earned.update({line.line_id: s for line, s in zip(goods, shares, strict=True)})
        available_at = delivered_at + ACCRUAL_DELAY
        expires_at = available_at + timedelta(days=EXPIRY_DAYS["loyalty"] or 0)
        if points:
            order.own_bucket = self.new_bucket(
                account,
                source="loyalty",
                granted=points,
                remaining=points,
                available_at=available_at,
                expires_at=expires_at,
                settled=False,
            )
            account.mature(self.now)  # delivered long enough ago: it pays debt at once
        assert (result.points, result.available_at, result.expires_at) == (
            points,
            available_at,
            expires_at,
        )

    @rule(
        who=st.integers(0, 1),
        spec=cart_strategy,
        ask=st.sampled_from(["max", "half"]),
        delivered_hours_ago=st.one_of(st.integers(0, 24 * 10), st.just(24 * 7)),
        top_up=st.integers(0, 400),
        part=st.one_of(st.none(), st.lists(st.booleans(), min_size=3, max_size=3)),
        short=st.booleans(),
    )
    def apply_then_accrue(
        self,
        who: int,
        spec: list[tuple[int, int, str, int]],
        ask: str,
        delivered_hours_ago: int,
        top_up: int,
        part: list[bool] | None,
        short: bool,
    ) -> None:
        """The usual life of an order: (a grant,) points spent at checkout, delivery of
        all of it, or of some lines (`part`), the others cancelled, or (`short`) a unit
        fewer of each line than was bought."""
        if top_up:
            self.grant(who, top_up, "loyalty", later=None, lasts=None)
        orders = len(self.orders)
        self.apply(who, spec, big=False, ask=ask)
        if len(self.orders) > orders and part is None:
            self.deliver(self.orders[-1], delivered_hours_ago)
        elif len(self.orders) > orders:
            self.deliver_part(self.orders[-1], part, delivered_hours_ago, fewer_units=short)

    @rule(
        pick=st.integers(0, 10**6),
        keep=st.lists(st.booleans(), min_size=3, max_size=3),
        delivered_hours_ago=st.one_of(st.integers(0, 24 * 10), st.just(24 * 7)),
        fewer_units=st.booleans(),
    )
    def accrue_part(
        self, pick: int, keep: list[bool], delivered_hours_ago: int, fewer_units: bool
    ) -> None:
        """Some lines of an order that spent points delivered, the others cancelled before
        delivery, or fewer units of each than were bought: the accrual names only what was
        delivered (docs/rules.md §6)."""
        candidates = [
            o
            for o in self.orders
            if o.accruable and o.earned is None and o.spent is not None and not o.returned
        ]
        if not candidates:
            return
        order = candidates[pick % len(candidates)]
        self.deliver_part(order, keep, delivered_hours_ago, fewer_units=fewer_units)

    def deliver_part(
        self,
        order: MOrder,
        keep: list[bool],
        delivered_hours_ago: int,
        *,
        fewer_units: bool = False,
    ) -> None:
        """Deliver the lines `keep` marks (never all, never none: one line is dropped or
        kept as needed), or with `fewer_units` one unit less of each line of two or more
        units (all lines may then be kept); an order of one unit is delivered whole."""
        lines = [line for line, k in zip(order.cart.lines, keep, strict=False) if k]
        if len(lines) == len(order.cart.lines) and not fewer_units:
            lines = lines[1:]
        if not lines:
            lines = [order.cart.lines[-1]]
        if fewer_units:
            lines = [one_unit_less(line) for line in lines]
        if lines == list(order.cart.lines):
            self.deliver(order, delivered_hours_ago)
            return
        event(f"accrual of part of an order{' (fewer units)' if fewer_units else ''}")
        self.deliver(order, delivered_hours_ago, tuple(lines))

    @rule(
        who=st.integers(0, 1),
        units=st.integers(2, 3),
        roubles=st.integers(1_200, 2_000),
        delivered_hours_ago=st.one_of(st.integers(0, 24 * 10), st.just(24 * 7)),
    )
    def deliver_short_after_spending_the_most(
        self, who: int, units: int, roubles: int, delivered_hours_ago: int
    ) -> None:
        """Dear units bought with as many points as they may take (3 %: 36 to 60 points a
        unit), then delivered one unit short: the points on the undelivered unit stay out
        of the accrual base (docs/rules.md §6), a difference of whole points earned."""
        self.grant(who, 200, "loyalty", later=None, lasts=None)
        orders = len(self.orders)
        self.apply(who, [(units, roubles, "goods", 0)], big=False, ask="max")
        if len(self.orders) > orders:
            self.deliver_part(self.orders[-1], [True], delivered_hours_ago, fewer_units=True)

    @rule(pick=st.integers(0, 10**6), spend=st.booleans(), points=st.integers(1, 5))
    def another_customer_names_the_order(self, pick: int, spend: bool, points: int) -> None:
        """An order is its first customer's: the other's accrual or apply is refused and
        changes nothing (docs/rules.md §6 ORDER_CUSTOMER_MISMATCH)."""
        if not self.orders:
            return
        order = self.orders[pick % len(self.orders)]
        other = self.customers[1 - order.customer]
        use_case: Callable[..., bytes]
        if spend:
            event("another customer's apply on an order")
            use_case, command = apply_redemption, commands.ApplyRedemption(
                key=self.key(), program_id=PROGRAM, customer_id=other, order_id=order.order_id,
                cart=order.cart, payment_method="", points=points, hold_seconds=0,
            )  # fmt: skip
        else:
            event("another customer's accrual of an order")
            use_case, command = accrue_order, commands.AccrueOrder(
                key=self.key(), program_id=PROGRAM, customer_id=other, order_id=order.order_id,
                cart=order.cart, delivered_at=self.now,
            )  # fmt: skip
        with pytest.raises(OrderCustomerMismatch):
            self.call(use_case, command)

    def hold(self, who: int, spec: list[tuple[int, int, str, int]], ask: str) -> MOrder | None:
        """A hold of an hour on a new order of the cart drawn (None if it could take nothing)."""
        account = self.accounts[who]
        order = MOrder(f"order-{self.tag}-{len(self.orders)}", who, make_cart(spec))
        most = maximum(order.cart, account, self.now)
        if most == 0:
            return None
        points = {"max": most, "half": (most + 1) // 2, "one": 1}[ask]
        result = self.call(
            apply_redemption,
            commands.ApplyRedemption(
                key=self.key(), program_id=PROGRAM, customer_id=self.customers[who],
                order_id=order.order_id, cart=order.cart, payment_method="", points=points,
                hold_seconds=3_600,
            ),
        )  # fmt: skip
        assert result.redemption.state.value == "HELD"
        self.orders.append(order)
        self.spend_on(order, points, result)  # held points leave the balance at once
        return order

    @rule(
        who=st.integers(0, 1),
        spec=cart_strategy,
        ask=st.sampled_from(["max", "half", "one"]),
        retry=st.sampled_from([None, "max", "half", "one"]),
    )
    def retry_after_a_released_hold(
        self, who: int, spec: list[tuple[int, int, str, int]], ask: str, retry: str | None
    ) -> None:
        """Payment failed: the hold is released, every point back; the retry under a new
        request id spends again as a new redemption, and is then the live one (docs/rules.md §6)."""
        order = self.hold(who, spec, ask)
        if order is None:
            return
        assert order.spent is not None
        held = sum(order.spent.values())
        released = self.call(
            reverse_redemption,
            commands.ReverseRedemption(
                key=self.key(), program_id=PROGRAM, order_id=order.order_id, lines=(),
                reason="payment failed",
            ),
        )  # fmt: skip
        self.give_back(order, held)
        order.spent, order.debits = None, []
        account = self.accounts[who]
        assert (
            released.points_returned,
            released.points_clawed_back,
            released.debt_points,
            released.balance_after,
        ) == (held, 0, 0, account.spendable_points(self.now))
        assert released.redemption.state.value == "RELEASED"
        most = maximum(order.cart, account, self.now)
        if retry is None or most == 0:
            return
        event("a retry after a released hold")
        points = {"max": most, "half": (most + 1) // 2, "one": 1}[retry]
        again = self.call(
            apply_redemption,
            commands.ApplyRedemption(
                key=self.key(), program_id=PROGRAM, customer_id=self.customers[who],
                order_id=order.order_id, cart=order.cart, payment_method="", points=points,
                hold_seconds=0,
            ),
        )  # fmt: skip
        assert again.redemption.redemption_id != released.redemption.redemption_id
        assert again.redemption.state.value == "APPLIED"
        self.spend_on(order, points, again)
        # Live again: one more attempt is refused.
        with pytest.raises(OrderAlreadyRedeemed):
            apply_redemption(
                self.deps,
                commands.ApplyRedemption(
                    key=self.key(), program_id=PROGRAM, customer_id=self.customers[who],
                    order_id=order.order_id, cart=order.cart, payment_method="", points=1,
                    hold_seconds=0,
                ),
                now=self.now,
                render=pickle.dumps,
            )  # fmt: skip

    @rule(
        who=st.integers(0, 1),
        spec=cart_strategy,
        ask=st.sampled_from(["max", "max", "half"]),
        delivered_hours_ago=st.one_of(st.integers(0, 24 * 10), st.just(24 * 7)),
        top_up=st.integers(0, 400),
    )
    def accrue_during_a_hold(
        self,
        who: int,
        spec: list[tuple[int, int, str, int]],
        ask: str,
        delivered_hours_ago: int,
        top_up: int,
    ) -> None:
        """Delivered and accrued before the capture: held points count as spent (docs/rules.md §6).
        A top-up makes the hold large enough (34 points or more) to change what is earned."""
        if top_up:
            self.grant(who, top_up, "loyalty", later=None, lasts=None)
        order = self.hold(who, spec, ask)
        if order is None:
            return
        event("accrual during a hold")
        self.deliver(order, delivered_hours_ago)
        captured = self.call(
            capture_redemption,
            commands.CaptureRedemption(key=self.key(), program_id=PROGRAM, order_id=order.order_id),
        )
        assert captured.redemption.state.value == "APPLIED"

    @rule(
        pick=st.integers(0, 10**6),
        whole=st.booleans(),
        amounts=st.lists(st.integers(0, 3), min_size=3, max_size=3),
        too_many=st.integers(0, 9),
    )
    def reverse(self, pick: int, whole: bool, amounts: list[int], too_many: int) -> None:
        orders = [o for o in self.orders if o.spent is not None or o.earned is not None]
        if not orders:
            return
        order = orders[pick % len(orders)]
        account = self.accounts[order.customer]
        if whole:
            units = {line.line_id: order.units_left(line) for line in order.cart.lines}
            asked: tuple[ReturnedLine, ...] = ()
        else:
            units = {}
            for line, amount in zip(order.cart.lines, amounts, strict=False):
                count = min(amount, order.units_left(line))
                if too_many == 0 and amount:  # now and then, one unit more than remains
                    count = order.units_left(line) + 1
                if count:
                    units[line.line_id] = count
            if not units:
                return
            asked = tuple(ReturnedLine(line_id, count) for line_id, count in units.items())
        command = commands.ReverseRedemption(
            key=self.key(), program_id=PROGRAM, order_id=order.order_id, lines=asked, reason="x"
        )
        lines = {line.line_id: line for line in order.cart.lines}
        if any(count > order.units_left(lines[line_id]) for line_id, count in units.items()):
            with pytest.raises(ExceedsRemaining):
                self.call(reverse_redemption, command)
            return
        result = self.call(reverse_redemption, command)

        def moving(per_line: dict[str, int]) -> int:
            return sum(
                cumulative(
                    per_line[line_id],
                    order.returned.get(line_id, 0),
                    order.returned.get(line_id, 0) + count,
                    lines[line_id].quantity,
                )
                for line_id, count in units.items()
            )

        # Spent points go back where they came from, latest-expiring bucket first. Into
        # a bucket that has expired they stay expired: worth nothing, they pay no debt.
        # The others pay debt first, in the same order.
        back = self.give_back(order, moving(order.spent) if order.spent is not None else 0)
        for line_id in units:
            took = bool(order.spent and order.spent.get(line_id))
            earned = bool(order.earned and order.earned.get(line_id))
            if took != earned:
                event(f"a return of a line with only {'points' if took else 'an accrual'}")
        # Earned points go too: from the order's own bucket, pending, spendable or
        # expired (points that expired there unspent are taken off what expired); only
        # what was spent comes from other spendable buckets, and the rest is debt. A line
        # delivered short gives back its undelivered units first, which earned nothing.
        claw = 0
        for line_id, count in units.items():
            line, before = lines[line_id], order.returned.get(line_id, 0)
            claw += cumulative(
                (order.earned or {}).get(line_id, 0),
                order.earned_units(line, before),
                order.earned_units(line, before + count),
                order.delivered.get(line_id, line.quantity),
            )
        missing = claw
        own = order.own_bucket
        if own is not None and own.available_at > self.now and missing:
            event("clawback from a pending accrual")
        if own is not None:
            take = min(missing, own.remaining)
            own.remaining -= take
            missing -= take
            if own.expired_at(self.now) and missing and own.written_expired:
                event("clawback from what expired in the own bucket")
            take = min(missing, own.written_expired)
            own.written_expired -= take
            missing -= take
        missing = take_first_expiring(account, missing, self.now, skip=own)
        if missing:
            event("a clawback left debt")
        account.debt += missing
        for line_id, count in units.items():
            order.returned[line_id] = order.returned.get(line_id, 0) + count
        assert (
            result.points_returned,
            result.points_clawed_back,
            result.debt_points,
            result.balance_after,
        ) == (back, claw - missing, missing, account.spendable_points(self.now))

    @rule(
        who=st.integers(0, 1),
        grants=st.lists(
            st.tuples(
                st.integers(1, 80),
                st.sampled_from(["loyalty", "promo", "action"]),
                st.sampled_from([None, None, 24, 24 * 5]),  # None: the source's expiry
            ),
            min_size=1,
            max_size=3,
        ),
        beyond_first=st.integers(1, 80),
        quantity=st.integers(2, 3),
        returned=st.integers(1, 3),
        hours_later=st.one_of(st.just(0), st.integers(20, 130)),
    )
    def return_part_of_a_spend_from_several_buckets(
        self,
        who: int,
        grants: list[tuple[int, str, int | None]],
        beyond_first: int,
        quantity: int,
        returned: int,
        hours_later: int,
    ) -> None:
        """Points spent from several buckets (the first-expiring one emptied, the next ones
        taken from), then, at once or hours later (when a bucket of a day or five may have
        expired), some units returned or the whole line. The points go back to the
        latest-expiring bucket first, and into an expired one they stay expired
        (docs/rules.md §6). When a part goes back, which bucket is refilled, and which one
        pays a debt, shows in every bucket's balance. Grants at one instant with the same
        expiry make ties, spent and refilled by creation order."""
        for points, source, lasts in grants:
            self.grant(who, points, source, later=None, lasts=lasts)
        account = self.accounts[who]
        live = account.spendable(self.now)
        if len(live) < 2:
            return
        points = min(live[0].remaining + beyond_first, account.spendable_points(self.now))
        # One line of `quantity` units whose tier cap (3 %) covers `points`.
        base_minor = -(-points * POINT * 10_000 // REDEEM_CAP_BP)
        roubles = -(-base_minor // (quantity * POINT))
        cart = make_cart([(quantity, roubles, "goods", 0)])
        assert maximum(cart, account, self.now) >= points
        order = MOrder(f"order-{self.tag}-{len(self.orders)}", who, cart)
        result = self.call(
            apply_redemption,
            commands.ApplyRedemption(
                key=self.key(), program_id=PROGRAM, customer_id=self.customers[who],
                order_id=order.order_id, cart=cart, payment_method="", points=points,
                hold_seconds=0,
            ),
        )  # fmt: skip
        self.orders.append(order)
        self.spend_on(order, points, result)
        assert len(order.debits) >= 2
        event("a part returned of points spent from several buckets")
        if hours_later:
            self.move_clock(self.now + timedelta(hours=hours_later))
        returnable = [o for o in self.orders if o.spent is not None or o.earned is not None]
        self.reverse(returnable.index(order), False, [min(returned, quantity)], 1)

    @rule(
        who=st.integers(0, 1),
        spec=cart_strategy,
        just_before=st.booleans(),
    )
    def read_an_accrual_at_its_expiry(
        self, who: int, spec: list[tuple[int, int, str, int]], just_before: bool
    ) -> None:
        """A customer who makes no call between an order's delivery and the instant its
        points expire: the accrual was never settled, and the reads at that instant (or one
        microsecond before) decide its maturity and its expiry themselves
        (docs/rules.md §5, §7: spendable while available_at ≤ t < expires_at)."""
        order = MOrder(f"order-{self.tag}-{len(self.orders)}", who, make_cart(spec))
        self.deliver(order, delivered_hours_ago=0)
        if order.own_bucket is None or order.own_bucket.expires_at is None:
            return  # it earned nothing, or would have moved the customer up a tier
        target = order.own_bucket.expires_at
        if just_before:
            target -= timedelta(microseconds=1)
        event(f"reads at an unsettled accrual's {'last instant' if just_before else 'expiry'}")
        self.move_clock(target)

    @rule(
        who=st.integers(0, 1),
        spec=cart_strategy,
        spend=st.booleans(),
        delivered_hours_ago=st.integers(0, 24 * 6),
        whole=st.booleans(),
        amounts=st.lists(st.integers(0, 3), min_size=3, max_size=3),
    )
    def return_before_the_accrual_matures(
        self,
        who: int,
        spec: list[tuple[int, int, str, int]],
        spend: bool,
        delivered_hours_ago: int,
        whole: bool,
        amounts: list[int],
    ) -> None:
        """The commonest return: goods sent back days after delivery, before what they
        earned matured. The points come back from the pending accrual, and leave the
        ledger at its maturity, where its ACCRUAL counts them in (docs/rules.md §6, §7)."""
        orders = len(self.orders)
        if spend:
            self.apply(who, spec, big=False, ask="max")
        if len(self.orders) > orders:
            order = self.orders[-1]
        else:
            order = MOrder(f"order-{self.tag}-{len(self.orders)}", who, make_cart(spec))
        self.deliver(order, delivered_hours_ago)
        if order.own_bucket is None:
            return  # it earned nothing, or would have moved the customer up a tier
        returnable = [o for o in self.orders if o.spent is not None or o.earned is not None]
        self.reverse(returnable.index(order), whole, amounts, 1)

    @rule(hours=hours_strategy)
    def advance(self, hours: int) -> None:
        self.move_clock(self.now + timedelta(hours=hours))

    @rule(pick=st.integers(0, 10**6), just_before=st.booleans())
    def advance_to_boundary(self, pick: int, just_before: bool) -> None:
        """Onto the next maturity or expiry instant exactly, or one microsecond before it."""
        ahead = sorted(
            {
                instant
                for account in self.accounts
                for b in account.buckets
                for instant in (b.available_at, b.expires_at)
                if instant is not None and instant > self.now
            }
        )
        if not ahead:
            return
        target = ahead[pick % min(len(ahead), 3)]
        if just_before and target - timedelta(microseconds=1) > self.now:
            target -= timedelta(microseconds=1)
        self.move_clock(target)

    def move_clock(self, to: datetime) -> None:
        event(f"clock passed {min((to - START).days // 30 * 30, 90)} days")
        self.now = to
        for account in self.accounts:
            account.mature(to)

    @rule(
        when=st.sampled_from(["at the clock", "at the next expiry", "after the next expiry"]),
        hours_after=st.integers(1, 48),
    )
    def run_expiry_job(self, when: str, hours_after: int) -> None:
        """The job at the clock, or first onto the next instant that expires some points, or
        some hours after it (as a job that runs now and then finds them)."""
        if when != "at the clock":
            expiring = [
                b.expires_at
                for account in self.accounts
                for b in account.buckets
                if b.remaining and b.expires_at is not None and b.expires_at > self.now
            ]
            if expiring:
                later = timedelta(hours=hours_after if when == "after the next expiry" else 0)
                self.move_clock(min(expiring) + later)
        due = [account.unwritten_expired(self.now) for account in self.accounts]
        report = expire_points(self.db, now=self.now)
        event(f"expiry job: {'wrote points' if sum(due) else 'nothing to write'}")
        assert report.points == sum(due)
        assert sum(1 for d in due if d) <= report.accounts <= len(self.accounts)
        # One new EXPIRY entry per bucket with points left, effective when it expired.
        written = {}
        for who, account in enumerate(self.accounts):
            for b in account.buckets:
                if b.expired_at(self.now):
                    if b.remaining:
                        written[(who, b.seq)] = (-b.remaining, b.expires_at)
                    b.written_expired += b.remaining
                    b.remaining = 0
        assert self.new_expiry_entries() == written
        self.expired_up_to = self.now
        again = expire_points(self.db, now=self.now)
        assert again.points == 0, "a second run at the same clock found more to expire"

    def new_expiry_entries(self) -> dict[tuple[int, int], tuple[int, datetime]]:
        """EXPIRY entries the job wrote since the last look: (customer, bucket seq) →
        (points, effective_at). Returns into expired buckets are written by the return."""
        e, b = ledger_entries.c, buckets.c
        rows = self.db.read(
            lambda c: c.execute(
                select(e.entry_id, e.customer_id, e.bucket_id, e.points, e.effective_at)
                .where(e.kind == "EXPIRY", e.request_id.is_(None), e.entry_id > self.seen_entry)
                .order_by(e.entry_id)
            ).all()
        )
        ids = self.db.read(
            lambda c: c.execute(select(b.customer_id, b.bucket_id).order_by(b.bucket_id)).all()
        )
        seq_of: dict[int, int] = {}
        for who, customer in enumerate(self.customers):
            own = [bucket_id for owner, bucket_id in ids if owner == customer]
            model = [m.seq for m in self.accounts[who].buckets]
            seq_of.update(zip(own, model, strict=True))
        found = {}
        for row in rows:
            key = (self.customers.index(row.customer_id), seq_of[row.bucket_id])
            assert key not in found, f"two EXPIRY entries for bucket {key} in one run"
            found[key] = (row.points, row.effective_at)
            self.seen_entry = row.entry_id
        return found

    @precondition(lambda self: self.last is not None)
    @rule()
    def replay_last_request(self) -> None:
        """The same request id and request: the first answer again, nothing changed."""
        assert self.last is not None
        use_case, command, answer = self.last
        assert use_case(self.deps, command, now=self.now, render=pickle.dumps) == answer

    # ---- checks after every step ----

    def teardown(self) -> None:
        """After each run, the project's own `reconcile` agrees with the database."""
        report = reconcile(self.db.engine, as_of=self.now)
        assert report.ok, "\n".join([report.summary(), *map(str, report.mismatches)])

    @invariant()
    def accounts_match_the_model(self) -> None:
        for customer, model in zip(self.customers, self.accounts, strict=True):
            got = get_account(self.deps, program_id=PROGRAM, customer_id=customer, now=self.now)
            assert (got.spendable_points, got.pending_points, got.debt_points) == (
                model.spendable_points(self.now),
                model.pending_points(self.now),
                model.debt,
            ), f"{customer} at {self.now.isoformat()}"
            assert dict(got.balances_by_source) == model.by_source(self.now)
            assert got.next_expiry == model.next_expiry(self.now)
            assert got.tier.tier.id == "base"

    @invariant()
    def buckets_match_the_model(self) -> None:
        b = buckets.c
        columns = [b.customer_id, b.source, b.granted, b.remaining, b.available_at]
        columns += [b.expires_at, b.settled, b.expired_points]
        everything = self.db.read(lambda c: c.execute(select(*columns).order_by(b.bucket_id)).all())
        for customer, model in zip(self.customers, self.accounts, strict=True):
            rows = [row for row in everything if row.customer_id == customer]
            assert len(rows) == len(model.buckets)
            for row, m in zip(rows, model.buckets, strict=True):
                assert row.remaining >= 0
                assert (row.source, row.granted, row.available_at, row.expires_at) == (
                    m.source,
                    m.granted,
                    m.available_at,
                    m.expires_at,
                )
                # A matured accrual pays debt when the next mutation settles it; until
                # then the database still holds what the model already paid.
                unsettled_paid = 0 if row.settled else m.paid_at_maturity
                assert (row.remaining, row.expired_points) == (
                    m.remaining + unsettled_paid,
                    m.written_expired,
                ), f"bucket #{m.seq} of {customer} at {self.now.isoformat()}"

    def ledger(self, customer: str) -> list[LedgerEntry]:
        """ListLedgerEntries' use case, page by page: the entries effective up to the clock."""
        entries: list[LedgerEntry] = []
        token = ""
        while True:
            page = list_ledger_entries(
                self.deps,
                commands.LedgerPageRequest(
                    program_id=PROGRAM,
                    customer_id=customer,
                    page_size=50,
                    page_token=token,
                ),
                now=self.now,
            )
            entries += page.entries
            if not page.next_page_token:
                assert all(entry.effective_at <= self.now for entry in entries)
                return entries
            token = page.next_page_token

    @invariant()
    def ledger_reconciles(self) -> None:
        for customer, model in zip(self.customers, self.accounts, strict=True):
            ledger = sum(entry.points for entry in self.ledger(customer))
            spendable, debt = model.spendable_points(self.now), model.debt
            unwritten = model.unwritten_expired(self.now)
            assert ledger == spendable - debt + unwritten, (
                f"{customer} at {self.now.isoformat()}: ledger {ledger}, spendable {spendable}, "
                f"debt {debt}, expired but not yet written {unwritten}"
            )
            if self.expired_up_to == self.now:  # docs/rules.md §7, to the letter
                assert unwritten == 0
                assert ledger == spendable - debt


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with fresh_postgres() as url:
        engine = create_database_engine(url, pool_size=2)
        migrate(engine)
        db = Database(engine)
        yield Harness(Deps(db, load_programs(PROGRAMS)), db)
        engine.dispose()


def test_balances_buckets_and_ledger_follow_the_model(harness: Harness) -> None:
    HARNESS[:] = [harness]
    EXAMPLES[0] = 0
    try:
        run_state_machine_as_test(
            LedgerModel,
            settings=settings(
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                print_blob=True,
                **RUN,
            ),
        )
    except BaseException:
        print(f"ledger model: failed in example {EXAMPLES[0]}")  # for planted_bugs.py
        raise
    finally:
        HARNESS.clear()


def test_a_grant_replayed_after_its_expiry_returns_the_first_answer(harness: Harness) -> None:
    """docs/rules.md §7: the same request id and request (every field but `as_of`) returns the first
    answer. A grant without `available_at` starts at the call; retried once its explicit
    `expires_at` has passed, it used to fail INVALID_ARGUMENT ("must be after
    available_at", judged against the retry's clock). Found by `replay_last_request`."""
    customer = f"cust-replay-{uuid.uuid4().hex[:8]}"
    command = commands.GrantPoints(
        key=commands.Idempotency(f"req-{customer}", b"grant"),
        program_id=PROGRAM,
        customer_id=customer,
        points=25,
        source="promo",
        available_at=None,
        expires_at=START + timedelta(hours=1),
        reason="replayed",
    )
    first = grant_points(harness.deps, command, now=START, render=pickle.dumps)
    assert unpickle(first).balance_after == 25
    later = START + timedelta(hours=2)
    assert grant_points(harness.deps, command, now=later, render=pickle.dumps) == first
    account = get_account(harness.deps, program_id=PROGRAM, customer_id=customer, now=later)
    assert (account.spendable_points, account.debt_points) == (0, 0)  # expired, granted once
