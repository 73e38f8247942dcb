"""The order (docs/rules.md §6): one customer, one set of lines, its attempts, accrual, returns.

Everything the service records about an order hangs off this aggregate; the rules that
tie its parts together live here, as pure functions of what was recorded:

* who may name the order (its customer: ORDER_CUSTOMER_MISMATCH otherwise);
* when a redemption may be made (at most one live attempt; a released or lapsed
  hold frees the order for a payment retry);
* what an accrual may claim (the delivered part of the order's lines:
  ACCRUAL_MISMATCH otherwise) and what was spent on the delivered units;
* what a return moves: the units of each line, the points given back to the
  redemption's buckets, the points and base taken back from the accrual, and the
  redemption's next state.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from pricing.accrual import Accrual, AccrualLine
from pricing.buckets import (
    Bucket,
    ClawbackPlan,
    Debit,
    DebitRecord,
    pay_debt_from_restore,
    plan_clawback,
    plan_restore,
)
from pricing.cart import Cart, CartLine
from pricing.errors import (
    AccrualMismatch,
    InvalidArgument,
    InvalidTransition,
    OrderAlreadyAccrued,
    OrderAlreadyRedeemed,
    OrderCustomerMismatch,
    Violation,
)
from pricing.ledger import LedgerEntry
from pricing.money import cumulative_share
from pricing.reversal import ReturnedLine, UnitsLine, plan_line_returns, units_to_return


class RedemptionState(Enum):
    HELD = "HELD"  # points out of the balance while payment is in flight
    APPLIED = "APPLIED"  # points spent
    PARTIALLY_REVERSED = "PARTIALLY_REVERSED"  # some returned units gave their points back
    REVERSED = "REVERSED"  # every unit returned
    RELEASED = "RELEASED"  # a hold given back on request (payment failed)
    EXPIRED = "EXPIRED"  # a hold that lapsed at its deadline


_TRANSITIONS: Mapping[RedemptionState, frozenset[RedemptionState]] = {
    RedemptionState.HELD: frozenset(
        {RedemptionState.APPLIED, RedemptionState.RELEASED, RedemptionState.EXPIRED}
    ),
    RedemptionState.APPLIED: frozenset(
        {RedemptionState.PARTIALLY_REVERSED, RedemptionState.REVERSED}
    ),
    RedemptionState.PARTIALLY_REVERSED: frozenset(
        {RedemptionState.PARTIALLY_REVERSED, RedemptionState.REVERSED}
    ),
    RedemptionState.REVERSED: frozenset(),
    RedemptionState.RELEASED: frozenset(),
    RedemptionState.EXPIRED: frozenset(),
}

# A live redemption holds the order: a released or lapsed hold gave everything back.
LIVE_STATES = frozenset(
    {
        RedemptionState.HELD,
        RedemptionState.APPLIED,
        RedemptionState.PARTIALLY_REVERSED,
        RedemptionState.REVERSED,
    }
)
# States in which points are spent on the order's lines (held ones count as spent).
_SPENT_STATES = LIVE_STATES


def transition(source: RedemptionState, target: RedemptionState) -> RedemptionState:
    """`target`, when the state machine allows it from `source`; else a domain error."""
    if target not in _TRANSITIONS[source]:
        raise InvalidTransition(source=source.value, target=target.value)
    return target


@dataclass(frozen=True)
class RedemptionLine:
    """Points one line took: `points` over `quantity` units, `returned_units` given back."""

    line_id: str
    quantity: int
    points: int
    discount_minor: int
    returned_units: int = 0

    def units(self) -> UnitsLine:
        return UnitsLine(self.line_id, self.quantity, self.points, self.returned_units)


@dataclass(frozen=True)
class Redemption:
    """One redemption attempt of an order: points spent (or held) on its lines."""

    redemption_id: str
    program_id: str
    order_id: str
    customer_id: str
    state: RedemptionState
    points: int
    discount_minor: int
    points_reversed: int
    payment_method: str
    program_version: int
    hold_expires_at: datetime | None
    created_at: datetime
    lines: tuple[RedemptionLine, ...]
    debits: tuple[DebitRecord, ...]
    attempt: int = 1  # the order's first attempt is 1, a retry after a release the next

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    def moved_to(self, target: RedemptionState) -> "Redemption":
        return replace(self, state=transition(self.state, target))

    def seen_at(self, now: datetime) -> "Redemption":
        """A hold lapses exactly at its deadline, whether or not that is written down yet; a
        lapse written down already is not seen at an `as_of` before the deadline (rules.md §7)."""
        deadline = self.hold_expires_at
        if deadline is None:
            return self
        if self.state is RedemptionState.HELD and deadline <= now:
            return self.moved_to(RedemptionState.EXPIRED)
        if self.state is RedemptionState.EXPIRED and now < deadline:
            return replace(self, state=RedemptionState.HELD)
        return self


@dataclass(frozen=True)
class OrderLine:
    """A line as the order recorded it, and how many of its units came back so far.

    `whole` is False for lines migrated from before orders were recorded: only their id
    and quantity are known (sku, category, brand, tags, kind, prices and discounts are
    defaults), so an accrual is checked against those two only.
    """

    line: CartLine
    returned_units: int = 0
    whole: bool = True

    @property
    def line_id(self) -> str:
        return self.line.line_id

    @property
    def quantity(self) -> int:
        return self.line.quantity


@dataclass(frozen=True)
class OrderHead:
    """What an apply needs of an order it may add to: its customer, and whether it is held."""

    order_id: str
    customer_id: str
    has_live_redemption: bool
    attempts: int = 0  # redemption attempts so far

    def check_customer(self, customer_id: str) -> None:
        if customer_id != self.customer_id:
            raise OrderCustomerMismatch(order_id=self.order_id, customer_id=customer_id)

    def check_redeemable(self, customer_id: str) -> None:
        """docs/rules.md §7's order: ORDER_CUSTOMER_MISMATCH, then ORDER_ALREADY_REDEEMED."""
        self.check_customer(customer_id)
        if self.has_live_redemption:
            raise OrderAlreadyRedeemed(self.order_id)


@dataclass(frozen=True)
class RedemptionReturn:
    """The redemption's side of a return: units per line, points back, its next state."""

    redemption: Redemption
    units: dict[str, int]
    points: int
    state: RedemptionState


@dataclass(frozen=True)
class AccrualReturn:
    """The accrual's side of a return: units per line, points and base taken back."""

    accrual: Accrual
    units: dict[str, int]
    points: int
    base_minor: int


@dataclass(frozen=True)
class ReturnPlan:
    """What one ReverseRedemption does to an order.

    `release`: a hold, released whole. `order_units`: units returned per order line.
    """

    order_units: dict[str, int]
    release: Redemption | None = None
    redemption: RedemptionReturn | None = None
    accrual: AccrualReturn | None = None


@dataclass(frozen=True)
class Order:
    program_id: str
    order_id: str
    customer_id: str
    lines: tuple[OrderLine, ...]
    attempts: tuple[Redemption, ...] = ()  # oldest first
    accrual: Accrual | None = None

    @staticmethod
    def new(*, program_id: str, order_id: str, customer_id: str, cart: Cart) -> "Order":
        """An order first named by an apply or an accrual: its lines are the cart's, whole."""
        return Order(
            program_id, order_id, customer_id, tuple(OrderLine(line) for line in cart.lines)
        )

    @property
    def head(self) -> OrderHead:
        return OrderHead(
            self.order_id, self.customer_id, self.live_redemption is not None, len(self.attempts)
        )

    @property
    def latest(self) -> Redemption | None:
        """The latest redemption attempt (what GetRedemption answers)."""
        return self.attempts[-1] if self.attempts else None

    @property
    def live_redemption(self) -> Redemption | None:
        return next((r for r in reversed(self.attempts) if r.is_live), None)

    def check_customer(self, customer_id: str) -> None:
        self.head.check_customer(customer_id)

    def check_accrual(self, customer_id: str, cart: Cart) -> None:
        """An accrual names the order's customer and, when it has a redemption, its lines.

        Each cart line must be a line of the order with at most the units bought, the
        same unit price and the same per-unit discounts (docs/rules.md §6).
        """
        self.check_customer(customer_id)
        if self.attempts:
            violations = _accrual_violations(self.lines, cart)
            if violations:
                raise AccrualMismatch(self.order_id, violations)
        if self.accrual is not None:
            raise OrderAlreadyAccrued(self.order_id)

    def spent_on_delivery(self, cart: Cart) -> dict[str, int]:
        """Points spent on the delivered units of each line: what the accrual base deducts.

        They are counted as a return of the undelivered units would count them: a line
        with P points over n units, K of them returned, d delivered, keeps
        P − floor(P × max(K, n − d) / n). Held points count as spent.
        """
        live = self.live_redemption
        if live is None or live.state not in _SPENT_STATES:
            return {}
        delivered = {line.line_id: line.quantity for line in cart.lines}
        spent = {}
        for line in live.lines:
            if line.line_id in delivered:
                gone = max(line.returned_units, line.quantity - delivered[line.line_id])
                gone = min(gone, line.quantity)
                spent[line.line_id] = line.points - cumulative_share(
                    line.points, done=gone, of=line.quantity
                )
        return spent

    def plan_return(self, returned: Sequence[ReturnedLine]) -> ReturnPlan:
        """What returning `returned` (nothing: every unit left) does, per docs/rules.md §6.

        Any line of the order may come back. On each line the undelivered units come
        back first: they took points but earned none.
        """
        accrual = self.accrual
        if accrual is not None and accrual.customer_id != self.customer_id:
            # Only rows written before orders were one thing can disagree (reconcile flags
            # them); a return never works on another customer's account.
            raise OrderCustomerMismatch(order_id=self.order_id, customer_id=accrual.customer_id)
        live = self.live_redemption
        if live is not None and live.state is RedemptionState.HELD:
            if returned:
                raise InvalidArgument(
                    [Violation("lines", "a hold is released whole: send no lines")]
                )
            return ReturnPlan({}, release=live, accrual=self._accrual_return(None))
        units = units_to_return(self._returnable(live), returned)
        if live is None and self.accrual is None:
            return ReturnPlan({})  # released or lapsed holds gave everything back already
        return ReturnPlan(
            units,
            redemption=self._redemption_return(live, units),
            accrual=self._accrual_return(units),
        )

    def _returnable(self, live: Redemption | None) -> list[UnitsLine]:
        """The order's lines, and any line only its redemption or accrual names.

        (An order first named by its accrual may be redeemed with a cart of other lines:
        their points must still come back.)
        """
        lines = {
            x.line_id: UnitsLine(x.line_id, x.quantity, 0, x.returned_units) for x in self.lines
        }
        named: list[RedemptionLine | AccrualLine] = [
            *(live.lines if live else ()),
            *(self.accrual.lines if self.accrual else ()),
        ]
        for line in named:
            lines.setdefault(
                line.line_id, UnitsLine(line.line_id, line.quantity, 0, line.returned_units)
            )
        return list(lines.values())

    def _redemption_return(
        self, live: Redemption | None, units: Mapping[str, int]
    ) -> RedemptionReturn | None:
        if live is None or live.state is RedemptionState.REVERSED:
            return None
        mine = {
            line.line_id: min(units.get(line.line_id, 0), line.quantity - line.returned_units)
            for line in live.lines
        }
        mine = {line_id: count for line_id, count in mine.items() if count}
        if not mine:
            return None
        points = sum(
            move.points for move in plan_line_returns([x.units() for x in live.lines], mine)
        )
        all_back = all(
            line.returned_units + mine.get(line.line_id, 0) == line.quantity for line in live.lines
        )
        state = RedemptionState.REVERSED if all_back else RedemptionState.PARTIALLY_REVERSED
        return RedemptionReturn(live, mine, points, transition(live.state, state))

    def _accrual_return(self, units: Mapping[str, int] | None) -> AccrualReturn | None:
        """The accrual's units: those of the returned ones that were delivered (None: all)."""
        accrual = self.accrual
        if accrual is None:
            return None
        bought = {line.line_id: line for line in self.lines}
        mine = {}
        for line in accrual.lines:
            if units is None:
                mine[line.line_id] = line.quantity - line.returned_units
                continue
            count = units.get(line.line_id, 0)
            if count == 0:
                continue
            order_line = bought.get(line.line_id)
            quantity, returned = (
                (order_line.quantity, order_line.returned_units)
                if order_line is not None
                else (line.quantity, line.returned_units)
            )
            undelivered = max(quantity - line.quantity, 0)
            returned_after = returned + count
            target = min(line.quantity, max(line.returned_units, returned_after - undelivered))
            mine[line.line_id] = target - line.returned_units
        mine = {line_id: count for line_id, count in mine.items() if count}
        points = sum(
            m.points for m in plan_line_returns([x.points_units() for x in accrual.lines], mine)
        )
        base = sum(
            m.points for m in plan_line_returns([x.base_units() for x in accrual.lines], mine)
        )
        return AccrualReturn(accrual, mine, points, base)


def _accrual_violations(lines: Sequence[OrderLine], cart: Cart) -> list[Violation]:
    bought = {line.line_id: line for line in lines}
    violations = []
    for index, item in enumerate(cart.lines):
        path = f"cart.lines[{index}]"
        recorded = bought.get(item.line_id)
        if recorded is None:
            violations.append(
                Violation(f"{path}.line_id", f"{item.line_id!r} is not a line of this order")
            )
            continue
        if item.quantity > recorded.quantity:
            violations.append(
                Violation(
                    f"{path}.quantity",
                    f"{item.quantity} units; the order bought {recorded.quantity}",
                )
            )
        if recorded.whole:
            violations += _price_violations(recorded.line, item, path=path)
    return violations


def _price_violations(bought: CartLine, item: CartLine, *, path: str) -> list[Violation]:
    """The unit price must be the order's; each discount the order's per unit.

    A discount over `d` of the order's `n` units may round either way: it matches when
    it is floor or ceil of discount × d / n.
    """
    violations = []
    if item.unit_price_minor != bought.unit_price_minor:
        violations.append(
            Violation(
                f"{path}.unit_price_minor",
                f"{item.unit_price_minor}; the order recorded {bought.unit_price_minor}",
            )
        )
    for name in ("discount_minor", "promo_discount_minor"):
        got, recorded = getattr(item, name), getattr(bought, name)
        if abs(got * bought.quantity - recorded * item.quantity) >= bought.quantity:
            violations.append(
                Violation(
                    f"{path}.{name}",
                    f"{got} over {item.quantity} units; the order recorded {recorded} "
                    f"over {bought.quantity}",
                )
            )
    return violations


# What the account's buckets do when a return moves points (pure plans, written by the store).


@dataclass(frozen=True)
class GiveBack:
    """Points a return gives back: to their buckets, to the debt, or (expired) nowhere."""

    points: int
    restored: tuple[Debit, ...]  # per debit of the redemption, every point coming back
    to_buckets: tuple[Debit, ...]
    stay_expired: tuple[Debit, ...]
    to_debt: int


def plan_give_back(redemption: Redemption, *, points: int, debt: int, now: datetime) -> GiveBack:
    """Points back to their buckets, latest expiry first, debt first (docs/rules.md §6).

    Points returned to a bucket that has already expired stay expired: worth nothing,
    they pay no debt either.
    """
    restored = plan_restore(redemption.debits, points=points)
    expired = {
        d.bucket_id for d in redemption.debits if d.expires_at is not None and d.expires_at <= now
    }
    live = [d for d in restored if d.bucket_id not in expired]
    to_buckets, to_debt = pay_debt_from_restore(live, debt=debt)
    return GiveBack(
        points,
        tuple(restored),
        tuple(to_buckets),
        tuple(d for d in restored if d.bucket_id in expired),
        to_debt,
    )


def give_back_entries(
    back: GiveBack, *, sources: Mapping[int, str], order_id: str, reason: str, now: datetime
) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            kind=kind,
            points=sign * d.points,
            source=sources[d.bucket_id],
            effective_at=now,
            bucket_id=d.bucket_id,
            order_id=order_id,
            reason=reason,
        )
        for kind, sign, moves in (("REVERSAL", 1, back.restored), ("EXPIRY", -1, back.stay_expired))
        for d in moves
    ]


def plan_take_back(
    accrual: Accrual,
    *,
    points: int,
    buckets: Sequence[Bucket],
    written_off: int,
    now: datetime,
) -> ClawbackPlan:
    """Points the returned units earned: own bucket, other spendable buckets, then debt."""
    return plan_clawback(
        buckets,
        points=points,
        own_bucket_id=accrual.bucket_id,
        now=now,
        own_written_off=written_off,
    )


def take_back_entries(
    plan: ClawbackPlan,
    *,
    buckets: Mapping[int, Bucket],
    order_id: str,
    reason: str,
    now: datetime,
) -> list[LedgerEntry]:
    """CLAWBACK per bucket (pending points leave at maturity, where their ACCRUAL counted
    them in), DEBT for what no bucket could give."""
    entries = [
        LedgerEntry(
            kind="CLAWBACK",
            points=-d.points,
            source=buckets[d.bucket_id].source,
            effective_at=max(buckets[d.bucket_id].available_at, now),
            bucket_id=d.bucket_id,
            order_id=order_id,
            reason=reason,
        )
        for d in plan.debits
    ]
    if plan.debt:
        entries.append(
            LedgerEntry(
                kind="DEBT",
                points=-plan.debt,
                source="",
                effective_at=now,
                order_id=order_id,
                reason=reason,
            )
        )
    return entries


def returned_accrual(accrual: Accrual, back: AccrualReturn) -> Accrual:
    """The accrual once a return took `back` from it."""
    return replace(
        accrual,
        base_returned_minor=accrual.base_returned_minor + back.base_minor,
        points_clawed_back=accrual.points_clawed_back + back.points,
        lines=tuple(_more_returned(line, back.units) for line in accrual.lines),
    )


def returned_redemption(redemption: Redemption, back: RedemptionReturn) -> Redemption:
    """The redemption once a return gave `back` (its units, points and next state)."""
    return replace(
        redemption,
        state=back.state,
        points_reversed=redemption.points_reversed + back.points,
        lines=tuple(
            replace(line, returned_units=line.returned_units + back.units.get(line.line_id, 0))
            for line in redemption.lines
        ),
    )


def answered_attempt(order: Order, plan: ReturnPlan) -> Redemption | None:
    """The order's latest attempt once `plan` is written down: what a return answers with."""
    latest = order.latest
    if latest is None:
        return None
    if plan.release is not None and plan.release.redemption_id == latest.redemption_id:
        return latest.moved_to(RedemptionState.RELEASED)
    back = plan.redemption
    if back is not None and back.redemption.redemption_id == latest.redemption_id:
        return returned_redemption(latest, back)
    return latest


def _more_returned(line: AccrualLine, units: Mapping[str, int]) -> AccrualLine:
    count = units.get(line.line_id, 0)
    return replace(line, returned_units=line.returned_units + count) if count else line
