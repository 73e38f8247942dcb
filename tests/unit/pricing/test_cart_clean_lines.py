"""The cheap check for a line with nothing to report agrees with the full validation."""

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
