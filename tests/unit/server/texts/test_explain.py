"""Explanations of quotes and tier gaps: exact sentences, by hand, per language.

Quotes are priced by pricing.quote on the shipped programs; 1 point = 100 minor in both.
"""

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pricing.buckets import Bucket
from pricing.caps import Constraint
from pricing.cart import Cart, CartLine, LineKind
from pricing.eligibility import ExcludedLine
from pricing.program import ExclusionRule, Program
from pricing.quote import Quote, quote
from pricing.tiers import TierStatus
from server.texts.explain import QuoteWords, excluded_explanation, next_tier_explanation
from server.texts.texts import Languages
from tests.unit.server.texts.conftest import NBSP, texts_of

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=ZoneInfo("Europe/Moscow"))
TEN_THOUSAND = CartLine("a", 1, 1_000_000)  # 10,000.00 RUB of goods


def priced(
    program: Program,
    lines: list[CartLine],
    *,
    promo_code: str = "",
    method: str = "",
    **points: int,
) -> Quote:
    buckets = [
        Bucket(i, source, n, NOW - timedelta(days=1), None, i)
        for i, (source, n) in enumerate(points.items())
    ]
    return quote(
        program,
        cart=Cart("RUB", tuple(lines), promo_code=promo_code),
        tier=program.tiers[0],
        payment_method=method,
        buckets=buckets,
        now=NOW,
    )


def said(languages: Languages, program: Program, answer: Quote, *, promo: str = "") -> dict:
    """The explanation of each option, per language."""
    out = {}
    for language in ("ru", "en"):
        words = QuoteWords(texts_of(languages, program.id, language), program, promo_code=promo)
        out[language] = [
            words.option(o, tier_id=answer.tier_id, spendable_points=answer.spendable_points)
            for o in answer.options
        ]
    return out


def test_tier_cap(languages: Languages, stomatorg: Program) -> None:
    # base tier 3 % of 1,000,000 minor = 30,000 minor → 300 points < balance 1,000
    answer = priced(stomatorg, [TEN_THOUSAND], loyalty=1_000)
    assert answer.options[0].binding is Constraint.TIER_CAP
    assert said(languages, stomatorg, answer) == {
        # docs/rules.md §10's example, word for word
        "ru": [
            f"Уровень «Базовый» позволяет оплатить баллами до 3{NBSP}% "
            f"от 10{NBSP}000,00{NBSP}₽ — 300 баллов"
        ],
        "en": ["The Basic tier lets points pay up to 3% of RUB10,000.00: 300 points"],
    }


def test_tier_cap_in_the_programs_own_words(languages: Languages, denco: Program) -> None:
    # DENCO 1.5.1: 50 % of 1,000,000 minor = 500,000 minor → 5,000 points < balance 20,000;
    # denco.toml overrides binding.TIER_CAP in both languages
    answer = priced(denco, [TEN_THOUSAND], loyalty=20_000)
    assert answer.options[0].binding is Constraint.TIER_CAP
    assert said(languages, denco, answer) == {
        "ru": [
            f"По правилам DENCO баллами можно оплатить не более 50{NBSP}% "
            f"от 10{NBSP}000,00{NBSP}₽ — 5{NBSP}000 баллов"
        ],
        "en": ["DENCO's rules let points pay at most 50% of RUB10,000.00: 5,000 points"],
    }


def test_tier_cap_of_a_payment_method(languages: Languages, denco: Program) -> None:
    # DENCO.Card: total 99.99 % of 1,000,000 = 999,900 minor → 9,999 points; loyalty room
    # min(9,999, 9,000) + promo room min(5,000, 5,000) = 14,000 > 9,999 → the total binds
    answer = priced(denco, [TEN_THOUSAND], method="denco_card", loyalty=9_000, promo=5_000)
    assert answer.options[0].binding is Constraint.TIER_CAP
    assert said(languages, denco, answer) == {
        "ru": [
            f"При оплате картой DENCO.Card баллами можно оплатить до 99,99{NBSP}% "
            f"от 10{NBSP}000,00{NBSP}₽ — 9{NBSP}999 баллов"
        ],
        "en": [
            "Paying with a DENCO.Card, points can pay up to 99.99% of RUB10,000.00: 9,999 points"
        ],
    }


def test_source_cap(languages: Languages, denco: Program) -> None:
    # DENCO.Card: loyalty 100 (its cap 9,999 does not bite) + promo min(cap 50 % = 5,000,
    # balance 10,000) = 5,100 < total 9,999; without source caps 10,100 → 9,999: SOURCE_CAP
    answer = priced(denco, [TEN_THOUSAND], method="denco_card", loyalty=100, promo=10_000)
    assert answer.options[0].binding is Constraint.SOURCE_CAP
    assert said(languages, denco, answer) == {
        "ru": [
            f"Баллы акций оплачивают не больше 50{NBSP}% от 10{NBSP}000,00{NBSP}₽ — "
            f"5{NBSP}000 баллов; всего можно списать 5{NBSP}100 баллов"
        ],
        "en": [
            "Campaign points pay at most 50% of RUB10,000.00, which is 5,000 points; "
            "5,100 points can be spent in all"
        ],
    }


@pytest.mark.parametrize(
    ("balance", "ru", "en"),
    [
        (1, "На счёте 1 балл: можно списать 1 балл", "1 point"),
        (2, "На счёте 2 балла: можно списать 2 балла", "2 points"),
        (5, "На счёте 5 баллов: можно списать 5 баллов", "5 points"),
        (11, "На счёте 11 баллов: можно списать 11 баллов", "11 points"),
        (21, "На счёте 21 балл: можно списать 21 балл", "21 points"),
        (101, "На счёте 101 балл: можно списать 101 балл", "101 points"),
    ],
)
def test_balance_with_plural_edges(
    languages: Languages, stomatorg: Program, balance: int, ru: str, en: str
) -> None:
    # tier cap 300 points (3 % of 10,000.00 RUB) > the balance: the balance binds
    answer = priced(stomatorg, [TEN_THOUSAND], loyalty=balance)
    assert answer.options[0].binding is Constraint.BALANCE
    assert said(languages, stomatorg, answer) == {
        "ru": [ru],
        "en": [f"Your account holds {en}: {en} can be spent"],
    }


def test_line_granularity(languages: Languages, denco: Program) -> None:
    # three lines of 1.99 RUB = 597 minor; DENCO.Card total 99.99 % → 596 minor → 5 points;
    # each line takes floor(199 / 100) = 1 point → 3 in all, which binds
    lines = [CartLine(f"l{i}", 1, 199) for i in range(3)]
    answer = priced(denco, lines, method="denco_card", loyalty=100)
    assert answer.options[0].binding is Constraint.LINE_GRANULARITY
    assert said(languages, denco, answer) == {
        "ru": [
            "Каждую позицию можно оплатить баллами только в пределах её цены в целых баллах: "
            "всего 3 балла"
        ],
        "en": ["Points pay each line only up to its price in whole points: 3 points in all"],
    }


def test_none(languages: Languages, denco: Program) -> None:
    # DENCO.Card: the total (9,999) and loyalty's own cap (9,999) meet; removing either alone
    # leaves the other at 9,999 → no single constraint binds
    answer = priced(denco, [TEN_THOUSAND], method="denco_card", loyalty=20_000)
    assert answer.options[0].binding is Constraint.NONE
    assert said(languages, denco, answer) == {
        "ru": [
            f"Можно списать 9{NBSP}999 баллов: на этой сумме сходятся сразу несколько ограничений"
        ],
        "en": ["9,999 points can be spent: several limits meet at this amount"],
    }


def test_no_eligible_lines_and_the_excluded_line(languages: Languages, denco: Program) -> None:
    answer = priced(denco, [CartLine("i", 1, 500_000, brand="IQOS")], loyalty=1_000)
    option = answer.options[0]
    assert option.binding is Constraint.NO_ELIGIBLE_LINES
    assert said(languages, denco, answer) == {
        "ru": ["В корзине нет товаров, которые можно оплатить баллами"],
        "en": ["Nothing in this cart can be paid with points"],
    }
    # the rule's name from denco.toml (DENCO 1.6)
    (line,) = option.excluded
    assert excluded_explanation(texts_of(languages, "denco", "ru"), denco, line) == (
        "Баллами не оплачиваются товары IQOS"
    )
    assert excluded_explanation(texts_of(languages, "denco", "en"), denco, line) == (
        "Points do not pay for IQOS products"
    )


def test_promo_conflict(languages: Languages, stomatorg: Program) -> None:
    # EXCLUSIVE: keep the promo (1,000,000 − 100,000 promo discount = 900,000 minor paid, no
    # points) or drop it (3 % of 1,000,000 → 300 points, pays 970,000)
    promo_line = CartLine("a", 1, 1_000_000, promo_discount_minor=100_000)
    answer = priced(stomatorg, [promo_line], promo_code="SALE10", loyalty=1_000)
    assert [o.binding for o in answer.options] == [Constraint.PROMO_CONFLICT, Constraint.TIER_CAP]
    assert said(languages, stomatorg, answer, promo="SALE10") == {
        "ru": [
            f"Промокод «SALE10» и баллы вместе не действуют: с промокодом вы платите "
            f"9{NBSP}000,00{NBSP}₽",
            f"Уровень «Базовый» позволяет оплатить баллами до 3{NBSP}% от 10{NBSP}000,00{NBSP}₽ — "
            "300 баллов",
        ],
        "en": [
            "The promo code SALE10 and points do not combine: with the promo code you pay "
            "RUB9,000.00",
            "The Basic tier lets points pay up to 3% of RUB10,000.00: 300 points",
        ],
    }


@pytest.mark.parametrize(
    ("line", "ru", "en"),
    [
        (
            ExcludedLine("s", "services", "kind", "SERVICE"),
            "Услуги баллами не оплачиваются",
            "Services cannot be paid with points",
        ),
        (
            ExcludedLine("t", "no_points", "tag", "no_points"),  # the rule has no name
            "Товары с пометкой «no_points» баллами не оплачиваются",
            "Goods tagged no_points cannot be paid with points",
        ),
        (
            ExcludedLine("c", "unnamed", "category", "air_tickets"),
            "Товары категории «air_tickets» баллами не оплачиваются",
            "Goods of the category air_tickets cannot be paid with points",
        ),
        (
            ExcludedLine("b", "unnamed", "brand", "Reima"),
            "Товары бренда «Reima» баллами не оплачиваются",
            "Goods of the brand Reima cannot be paid with points",
        ),
        (
            ExcludedLine("k", "unnamed", "sku", "SKU-1"),
            "Товар «SKU-1» баллами не оплачивается",
            "The item SKU-1 cannot be paid with points",
        ),
        (
            ExcludedLine("g", "unnamed", "kind", "GOODS"),
            "Товары баллами не оплачиваются",
            "Goods cannot be paid with points",
        ),
    ],
)
def test_excluded_lines_without_a_rule_name(
    languages: Languages, stomatorg: Program, line: ExcludedLine, ru: str, en: str
) -> None:
    program = dataclasses.replace(
        stomatorg,
        exclusions=(*stomatorg.exclusions, ExclusionRule("unnamed", tags=frozenset({"x"}))),
    )
    assert excluded_explanation(texts_of(languages, "stomatorg", "ru"), program, line) == ru
    assert excluded_explanation(texts_of(languages, "stomatorg", "en"), program, line) == en


def test_an_excluded_service_line_in_a_quote(languages: Languages, stomatorg: Program) -> None:
    service = CartLine("s", 1, 50_000, kind=LineKind.SERVICE)
    answer = priced(stomatorg, [TEN_THOUSAND, service], loyalty=10)
    (line,) = answer.options[0].excluded
    assert excluded_explanation(texts_of(languages, "stomatorg", "ru"), stomatorg, line) == (
        "Услуги баллами не оплачиваются"
    )


def _status(program: Program, *, spend: int, orders: int) -> TierStatus:
    regular = program.tier("regular")  # 3 orders and 100,000.00 RUB
    return TierStatus(
        tier=program.tier("base"),
        spend_minor=spend,
        orders=orders,
        next_tier=regular,
        missing_spend_minor=max(regular.min_spend_minor - spend, 0),
        missing_orders=max(regular.min_orders - orders, 0),
    )


@pytest.mark.parametrize(
    ("spend", "orders", "ru", "en"),
    [
        # 3 − 1 = 2 orders and 10,000,000 − 8,500,000 = 1,500,000 minor missing (docs/rules.md §10)
        (
            8_500_000,
            1,
            f"Ещё 2 заказа и 15{NBSP}000,00{NBSP}₽ до уровня «Постоянный клиент»",
            "2 orders and RUB15,000.00 more to reach the Regular customer tier",
        ),
        (
            10_000_000,
            2,
            "Ещё 1 заказ до уровня «Постоянный клиент»",
            "1 order more to reach the Regular customer tier",
        ),
        (
            9_999_999,
            5,
            f"Ещё 0,01{NBSP}₽ до уровня «Постоянный клиент»",
            "RUB0.01 more to reach the Regular customer tier",
        ),
        (
            0,
            0,
            f"Ещё 3 заказа и 100{NBSP}000,00{NBSP}₽ до уровня «Постоянный клиент»",
            "3 orders and RUB100,000.00 more to reach the Regular customer tier",
        ),
    ],
)
def test_next_tier(
    languages: Languages, stomatorg: Program, spend: int, orders: int, ru: str, en: str
) -> None:
    status = _status(stomatorg, spend=spend, orders=orders)
    assert next_tier_explanation(texts_of(languages, "stomatorg", "ru"), status) == ru
    assert next_tier_explanation(texts_of(languages, "stomatorg", "en"), status) == en
