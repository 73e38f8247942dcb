"""Plural forms and number formats come from CLDR (Babel); the expected strings by hand."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.texts.catalogue import SHIPPED
from server.texts.texts import Languages, Texts
from tests.unit.server.texts.conftest import NBSP, texts_of


@pytest.mark.parametrize(
    ("count", "ru", "en"),
    [
        (0, "0 баллов", "0 points"),
        (1, "1 балл", "1 point"),
        (2, "2 балла", "2 points"),
        (5, "5 баллов", "5 points"),
        (11, "11 баллов", "11 points"),
        (21, "21 балл", "21 points"),
        (101, "101 балл", "101 points"),
        (111, "111 баллов", "111 points"),
        (1_000, f"1{NBSP}000 баллов", "1,000 points"),
    ],
)
def test_points_plural_forms(languages: Languages, count: int, ru: str, en: str) -> None:
    assert texts_of(languages, "stomatorg", "ru").points(count) == ru
    assert texts_of(languages, "stomatorg", "en").points(count) == en


@pytest.mark.parametrize(
    ("count", "ru", "en"),
    [
        (1, "1 заказ", "1 order"),
        (2, "2 заказа", "2 orders"),
        (5, "5 заказов", "5 orders"),
        (11, "11 заказов", "11 orders"),
        (21, "21 заказ", "21 orders"),
        (101, "101 заказ", "101 orders"),
    ],
)
def test_orders_plural_forms(languages: Languages, count: int, ru: str, en: str) -> None:
    assert texts_of(languages, "stomatorg", "ru").count("orders", count) == ru
    assert texts_of(languages, "stomatorg", "en").count("orders", count) == en


@pytest.mark.parametrize(
    ("minor", "ru", "en"),
    [
        (1_000_000, f"10{NBSP}000,00{NBSP}₽", "RUB10,000.00"),  # docs/rules.md §10's «10 000,00 ₽»
        (5, f"0,05{NBSP}₽", "RUB0.05"),
        (123_456_789, f"1{NBSP}234{NBSP}567,89{NBSP}₽", "RUB1,234,567.89"),
    ],
)
def test_money(languages: Languages, minor: int, ru: str, en: str) -> None:
    assert texts_of(languages, "stomatorg", "ru").money(minor) == ru
    assert texts_of(languages, "stomatorg", "en").money(minor) == en


@pytest.mark.parametrize(
    ("bp", "ru", "en"),
    [(300, f"3{NBSP}%", "3%"), (9_999, f"99,99{NBSP}%", "99.99%"), (250, f"2,5{NBSP}%", "2.5%")],
)
def test_percent(languages: Languages, bp: int, ru: str, en: str) -> None:
    assert texts_of(languages, "denco", "ru").percent(bp) == ru
    assert texts_of(languages, "denco", "en").percent(bp) == en


# Numbers and money are put together from the CLDR pattern taken apart once (texts.py's
# `_Shape`); Babel applying the pattern itself must say exactly the same, in every shipped
# language and currency, at every magnitude.
@pytest.mark.parametrize("currency", ["RUB", "USD", "JPY", "KWD", "EUR"])
@pytest.mark.parametrize("language", ["ru", "en"])
@given(value=st.integers(min_value=0, max_value=10**19) | st.sampled_from([0, 1, 999, 1000]))
def test_numbers_and_money_say_what_babel_says(language: str, currency: str, value: int) -> None:
    texts = Texts(language, SHIPPED[language], currency=currency)
    assert texts.number(value) == str(texts._decimal.apply(value, texts.locale))
    scaled = Decimal(value).scaleb(-texts._digits)
    assert texts.money(value) == str(texts._money.apply(scaled, texts.locale))


def test_counts_below_zero_are_said_by_babel() -> None:
    texts = Texts("ru", SHIPPED["ru"], currency="RUB")
    assert texts.number(-1234) == "-1" + NBSP + "234"
    assert texts.money(-123456) == "-1" + NBSP + "234,56" + NBSP + "₽"
