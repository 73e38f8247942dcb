"""A 50-line quote against 20 buckets (issue #2): `pytest tests/bench --benchmark-enable`."""

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from pricing.buckets import Bucket
from pricing.cart import Cart, CartLine, LineKind
from pricing.program import Program, load_program
from pricing.quote import Quote, quote

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=MSK)


def fifty_lines(*, promo: bool) -> Cart:
    """50 lines: mostly goods, every 10th excluded by each program, every 7th a service."""
    lines = []
    for i in range(50):
        price = 1_000 + 137 * i  # 10.00 … 77.13 RUB
        lines.append(
            CartLine(
                f"line-{i}",
                quantity=1 + i % 3,
                unit_price_minor=price,
                sku=f"SKU-{i}",
                category="gift_certificates" if i % 10 == 3 else "toothpaste",
                brand="Reima" if i % 10 == 5 else "Acme",
                tags=("no_points",) if i % 10 == 7 else ("sale",),
                kind=LineKind.SERVICE if i % 7 == 6 else LineKind.GOODS,
                discount_minor=price // 10 if i % 4 == 0 else 0,
                promo_discount_minor=price // 20 if promo and i % 2 == 0 else 0,
            )
        )
    return Cart("RUB", tuple(lines), delivery_minor=30_000, promo_code="SPRING" if promo else "")


def twenty_buckets(sources: list[str]) -> list[Bucket]:
    """20 buckets over the program's sources: spendable, pending, expired, never-expiring."""
    buckets = []
    for i in range(20):
        available = NOW - timedelta(days=30 - i) if i % 6 else NOW + timedelta(days=2)
        expires = None if i % 5 == 4 else NOW + timedelta(days=i * 9 - 20)
        buckets.append(Bucket(i, sources[i % len(sources)], 40 + 13 * i, available, expires, seq=i))
    return buckets


CASES = {
    # DENCO with its card: source caps, payment-method override, STACK promo
    "denco-card": ("denco.toml", "denco_card", True),
    # Stomatorg, vip tier, EXCLUSIVE promo: two options priced
    "stomatorg-promo": ("stomatorg.toml", "", True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_quote_50_lines_20_buckets(benchmark: BenchmarkFixture, case: str) -> None:
    file_name, method, promo = CASES[case]
    program: Program = load_program(PROGRAMS / file_name)
    tier = program.tiers[-1]
    buckets = twenty_buckets(sorted(program.sources))

    def fresh_cart() -> tuple[tuple[Cart], dict[str, object]]:
        # A new cart each round, as each request brings one: nothing carries over.
        return (fifty_lines(promo=promo),), {}

    def run(cart: Cart) -> Quote:
        return quote(program, cart=cart, tier=tier, payment_method=method, buckets=buckets, now=NOW)

    result = benchmark.pedantic(run, setup=fresh_cart, rounds=2000, warmup_rounds=50)
    cart = fifty_lines(promo=promo)
    best = result.options[result.recommended]
    assert best.max_points > 0 or result.options[-1].max_points > 0
    assert len(cart.lines) == 50 and len(buckets) == 20
