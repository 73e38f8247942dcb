"""Calls of the use cases on a FakeStore, with stomatorg's numbers (1 point = 100 kopecks)."""

from datetime import datetime, timedelta

from pricing.cart import Cart, CartLine
from pricing.order import Redemption
from pricing.reversal import ReturnedLine
from server.service import commands
from server.service.accrue import AccrueResult, accrue_order
from server.service.apply import ApplyResult, apply_redemption
from server.service.capture import Captured, capture_redemption
from server.service.grant import GrantResult, grant_points
from server.service.reverse import ReverseResult, reverse_redemption
from tests.unit.service.fakes import NOW, FakeStore, deps_on, key

P = "stomatorg"


def drills(quantity: int = 2, unit_price_minor: int = 500_000, **fields: object) -> Cart:
    """Line "1": `quantity` drills at 5,000 RUB (sku, category, brand, tags kept whole)."""
    line = CartLine(
        "1", quantity, unit_price_minor, sku="drill", category="tools", brand="Makita",
        tags=("power",), **fields,  # type: ignore[arg-type]
    )  # fmt: skip
    return Cart("RUB", (line,))


class Calls:
    """The use cases as a caller sees them; each keeps what it got back."""

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store or FakeStore()
        self.deps = deps_on(self.store)
        self.results: list[object] = []
        self._n = 0

    def _key(self, request_id: str | None) -> commands.Idempotency:
        self._n += 1
        return key(request_id or f"req-{self._n}")

    def _keep(self, result: object) -> bytes:
        self.results.append(result)
        return repr(result).encode()

    def grant(self, customer: str, points: int, *, now: datetime = NOW) -> GrantResult:
        command = commands.GrantPoints(
            self._key(None), P, customer, points, "loyalty", None, None, "welcome"
        )
        grant_points(self.deps, command, now=now, render=self._keep)
        return self.last(GrantResult)

    def apply(
        self,
        customer: str,
        order: str,
        points: int,
        cart: Cart | None = None,
        *,
        hold_seconds: int = 0,
        request_id: str | None = None,
        now: datetime = NOW,
    ) -> bytes:
        command = commands.ApplyRedemption(
            self._key(request_id), P, customer, order, cart or drills(), "", points, hold_seconds
        )
        return apply_redemption(self.deps, command, now=now, render=self._keep)

    def capture(self, order: str, *, now: datetime = NOW) -> Redemption:
        """The redemption as captured (the answer); `captured()` counts the points."""
        command = commands.CaptureRedemption(self._key(None), P, order)
        capture_redemption(self.deps, command, now=now, render=self._keep)
        answer = self.last(Captured)
        assert isinstance(answer, Captured)
        return answer.redemption

    def capture_answer(self) -> Captured:
        """The last capture's whole answer: the redemption, what it captured, the balance."""
        answer = self.last(Captured)
        assert isinstance(answer, Captured)
        return answer

    def captured(self) -> int:
        return int(self.deps.metrics.captured.labels(P)._value.get())

    def accrue(
        self, customer: str, order: str, cart: Cart | None = None, *, now: datetime = NOW
    ) -> AccrueResult:
        command = commands.AccrueOrder(self._key(None), P, customer, order, cart or drills(), NOW)
        accrue_order(self.deps, command, now=now, render=self._keep)
        return self.last(AccrueResult)

    def reverse(self, order: str, *lines: tuple[str, int], now: datetime = NOW) -> ReverseResult:
        returned = tuple(ReturnedLine(line_id, count) for line_id, count in lines)
        command = commands.ReverseRedemption(self._key(None), P, order, returned, "return")
        reverse_redemption(self.deps, command, now=now, render=self._keep)
        return self.last(ReverseResult)

    def last(self, kind: type) -> object:  # type: ignore[type-arg]
        result = self.results[-1]
        assert isinstance(result, kind), result
        return result

    def applied(self) -> ApplyResult:
        result = self.last(ApplyResult)
        assert isinstance(result, ApplyResult)
        return result

    def ledger(self, customer: str) -> list[tuple[str, int]]:
        return [(e.kind, e.points) for p, c, e in self.store.state.ledger if c == customer]

    def spendable(self, customer: str) -> int:
        owners = self.store.state.owners
        return sum(
            b.remaining
            for i, b in self.store.state.buckets.items()
            if owners[i] == (P, customer) and b.available_at <= NOW
        )


LATER = NOW + timedelta(days=1)
