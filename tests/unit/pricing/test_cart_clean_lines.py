"""The cheap check for a line with nothing to report agrees with the full validation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.cart import MAX_STRING, CartLine, _is_clean, _validate_line
from pricing.money import INT64_MAX

# strings at the length limit and one past it: where the cheap check's `<=` must agree
_texts = st.text(max_size=3) | st.sampled_from(["x" * MAX_STRING, "x" * (MAX_STRING + 1)])
_amounts = st.integers(-2, 10) | st.just(INT64_MAX) | st.integers(INT64_MAX // 2, INT64_MAX)


@given(
    line_id=_texts,
    sku=_texts,
    category=_texts,
    brand=_texts,
    tags=st.lists(_texts, max_size=2),
    quantity=st.integers(-1, 3) | st.just(INT64_MAX),
    unit_price=_amounts,
    discount=_amounts,
    promo=_amounts,
)
def test_a_line_is_clean_exactly_when_validation_finds_nothing(
    line_id: str,
    sku: str,
    category: str,
    brand: str,
    tags: list[str],
    quantity: int,
    unit_price: int,
    discount: int,
    promo: int,
) -> None:
    line = CartLine(
        line_id,
        quantity=quantity,
        unit_price_minor=unit_price,
        sku=sku,
        category=category,
        brand=brand,
        tags=tuple(tags),
        discount_minor=discount,
        promo_discount_minor=promo,
    )
    assert _is_clean(line) == (not _validate_line(line, path="cart.lines[0]"))


AT_LIMIT = "x" * MAX_STRING


@pytest.mark.parametrize(
    ("line", "clean"),
    [
        # each bound of the cheap check, exactly at it (clean) and one past it (not)
        (CartLine(AT_LIMIT, 1, 100), True),
        (CartLine(AT_LIMIT + "x", 1, 100), False),
        (CartLine("", 1, 100), False),
        (CartLine("l", 1, 100, sku=AT_LIMIT, category=AT_LIMIT, brand=AT_LIMIT), True),
        (CartLine("l", 1, 100, sku=AT_LIMIT + "x"), False),
        (CartLine("l", 1, 100, category=AT_LIMIT + "x"), False),
        (CartLine("l", 1, 100, brand=AT_LIMIT + "x"), False),
        (CartLine("l", 1, 100, tags=("t", AT_LIMIT)), True),
        (CartLine("l", 1, 100, tags=("t", AT_LIMIT + "x")), False),
        (CartLine("l", 1, 0), True),
        (CartLine("l", 0, 100), False),
        (CartLine("l", 1, -1), False),
        (CartLine("l", 1, INT64_MAX), True),  # gross exactly INT64_MAX
        (CartLine("l", 2, INT64_MAX // 2 + 1), False),  # 2 × (2^62) = 2^63: one past
        (CartLine("l", 1, 100, discount_minor=60, promo_discount_minor=40), True),  # = gross
        (CartLine("l", 1, 100, discount_minor=61, promo_discount_minor=40), False),
        (CartLine("l", 1, 100, discount_minor=0, promo_discount_minor=0), True),
        (CartLine("l", 1, 100, discount_minor=-1), False),
        (CartLine("l", 1, 100, promo_discount_minor=-1), False),
    ],
)
def test_at_each_bound_the_cheap_check_and_the_validation_agree(
    line: CartLine, clean: bool
) -> None:
    found = _validate_line(line, path="cart.lines[0]")
    assert (_is_clean(line), found == []) == (clean, clean)
