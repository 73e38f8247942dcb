"""pricing.cart: net, the promo dropped, and validation into one violation per offending field."""

from collections import Counter
from dataclasses import replace

import pytest

from pricing.cart import Cart, CartLine, LineKind, validate_cart, validate_string
from pricing.errors import Violation
from pricing.money import INT64_MAX


def good_line(line_id: str = "l1", **fields: object) -> CartLine:
    line = CartLine(line_id, quantity=2, unit_price_minor=500)
    return replace(line, **fields)


def cart_of(*lines: CartLine, **fields: object) -> Cart:
    return replace(Cart("RUB", tuple(lines)), **fields)


def paths(violations: list[Violation]) -> list[str]:
    return [v.field for v in violations]


class TestNet:
    def test_net_is_gross_minus_both_discounts(self) -> None:
        line = CartLine("a", 3, 1_000, discount_minor=250, promo_discount_minor=400)
        # gross 3 × 1000 = 3000; net 3000 − 250 − 400 = 2350
        assert line.gross_minor == 3_000
        assert line.net_minor == 2_350

    def test_totals_include_delivery(self) -> None:
        cart = Cart(
            "RUB",
            (CartLine("a", 1, 1_000, discount_minor=100), CartLine("b", 2, 300)),
            delivery_minor=500,
        )
        # goods 900 + 600 = 1500; with delivery 500 → 2000
        assert cart.goods_net_minor == 1_500
        assert cart.total_minor == 2_000

    def test_without_promo_gives_the_promo_part_back(self) -> None:
        cart = Cart(
            "RUB",
            (
                CartLine("a", 1, 1_000, discount_minor=100, promo_discount_minor=200),
                CartLine("b", 1, 500, promo_discount_minor=50),
            ),
            promo_code="SPRING",
        )
        dropped = cart.without_promo()
        assert dropped.promo_code == ""
        # a: 1000 − 100 = 900 (the markdown stays); b: 500
        assert [line.net_minor for line in dropped.lines] == [900, 500]
        assert [line.discount_minor for line in dropped.lines] == [100, 0]
        # the original is unchanged: 1000 − 100 − 200 = 700, 500 − 50 = 450
        assert [line.net_minor for line in cart.lines] == [700, 450]

    def test_line_lookup(self) -> None:
        cart = cart_of(good_line("a"), good_line("b"))
        assert cart.line("b").line_id == "b"
        with pytest.raises(KeyError):
            cart.line("c")


class TestValidation:
    def test_a_good_cart_has_no_violations(self) -> None:
        cart = cart_of(
            good_line("a", sku="S", category="c", brand="b", tags=("t",)),
            good_line("b", kind=LineKind.SERVICE, discount_minor=400, promo_discount_minor=600),
            delivery_minor=300,
            promo_code="P",
        )
        assert validate_cart(cart) == []

    def test_one_violation_per_offending_field_with_exact_paths(self) -> None:
        cart = cart_of(
            good_line("a"),
            good_line("b", quantity=0, discount_minor=-1),
            good_line("c", unit_price_minor=-5, promo_discount_minor=-2),
        )
        assert paths(validate_cart(cart)) == [
            "cart.lines[1].quantity",
            "cart.lines[1].discount_minor",
            "cart.lines[2].unit_price_minor",
            "cart.lines[2].promo_discount_minor",
        ]

    def test_descriptions(self) -> None:
        violations = validate_cart(cart_of(good_line(quantity=-3)))
        assert violations == [Violation("cart.lines[0].quantity", "must be > 0")]

    def test_empty_and_duplicate_line_ids(self) -> None:
        cart = cart_of(good_line("a"), good_line(""), good_line("a"))
        violations = validate_cart(cart)
        assert paths(violations) == ["cart.lines[1].line_id", "cart.lines[2].line_id"]
        assert violations[0].description == "must not be empty"
        assert "duplicate line_id 'a'" in violations[1].description

    def test_cart_level_fields(self) -> None:
        cart = Cart("", (), delivery_minor=-1, promo_code="p" * 257)
        assert paths(validate_cart(cart)) == [
            "cart.currency",
            "cart.promo_code",
            "cart.delivery_minor",
            "cart.lines",
        ]

    def test_currency_longer_than_three(self) -> None:
        assert paths(validate_cart(cart_of(good_line(), currency="RUBL"))) == ["cart.currency"]

    def test_field_prefix(self) -> None:
        violations = validate_cart(cart_of(good_line(quantity=0)), field="request.cart")
        assert paths(violations) == ["request.cart.lines[0].quantity"]

    def test_discounts_above_the_line_total(self) -> None:
        # gross 2 × 500 = 1000: 600 + 400 = 1000 is fine, 600 + 401 = 1001 is not
        fine = good_line(discount_minor=600, promo_discount_minor=400)
        assert validate_cart(cart_of(fine, promo_code="P")) == []
        over = good_line(discount_minor=600, promo_discount_minor=401)
        violations = validate_cart(cart_of(over, promo_code="P"))
        assert paths(violations) == ["cart.lines[0].discount_minor"]
        assert "exceed the line total 1000" in violations[0].description

    @pytest.mark.parametrize(("discount", "promo"), [(1_001, 0), (0, 1_001)])
    def test_either_discount_alone_above_the_line_total(self, discount: int, promo: int) -> None:
        # gross 2 × 500 = 1000; the other discount 0 does not make the sum fine
        line = good_line(discount_minor=discount, promo_discount_minor=promo)
        assert validate_cart(cart_of(line, promo_code="P")) == [
            Violation(
                "cart.lines[0].discount_minor",
                f"discounts ({discount} + {promo}) exceed the line total 1000",
            )
        ]

    def test_a_promo_discount_must_name_its_promo_code(self) -> None:
        # docs/rules.md §3: a line with promo_discount_minor > 0 in a cart without promo_code is bad
        # input, or EXCLUSIVE could be bypassed; a promo discount of 0 needs no code.
        cart = cart_of(
            good_line("a", promo_discount_minor=0), good_line("b", promo_discount_minor=1)
        )
        assert validate_cart(cart) == [
            Violation(
                "cart.lines[1].promo_discount_minor", "a promo discount needs the cart's promo_code"
            )
        ]
        assert validate_cart(replace(cart, promo_code="SPRING")) == []

    def test_at_most_1000_lines(self) -> None:
        lines = [good_line(f"l{i}") for i in range(1_000)]
        assert validate_cart(cart_of(*lines)) == []
        violations = validate_cart(cart_of(*lines, good_line("l1000")))
        assert violations == [Violation("cart.lines", "must have at most 1000 lines, got 1001")]

    @pytest.mark.parametrize("name", ["sku", "category", "brand", "line_id"])
    def test_256_characters(self, name: str) -> None:
        assert validate_cart(cart_of(good_line(**{name: "x" * 256}))) == []
        violations = validate_cart(cart_of(good_line(**{name: "x" * 257})))
        assert violations == [
            Violation(f"cart.lines[0].{name}", "must be at most 256 characters, got 257")
        ]

    def test_256_characters_in_tags_and_promo_code(self) -> None:
        cart = cart_of(good_line(tags=("ok", "t" * 257)), promo_code="p" * 256)
        assert paths(validate_cart(cart)) == ["cart.lines[0].tags[1]"]

    def test_line_total_overflows_int64(self) -> None:
        # 2 × 2^62 = 2^63 = INT64_MAX + 1
        violations = validate_cart(cart_of(good_line(quantity=2, unit_price_minor=2**62)))
        assert paths(violations) == ["cart.lines[0].unit_price_minor"]
        assert "overflows int64" in violations[0].description

    def test_a_line_at_int64_max_is_above_the_cart_bound(self) -> None:
        # rules.md §3: a total above 10^15 is refused; 1 × INT64_MAX = 9 223 372 036 854 775 807
        violations = validate_cart(cart_of(good_line(quantity=1, unit_price_minor=INT64_MAX)))
        assert violations == [
            Violation(
                "cart.lines",
                "the cart's total (lines before discounts, plus delivery) is "
                "9223372036854775807, above 1000000000000000",
            )
        ]

    def test_a_line_at_int64_max_with_another_fault_is_not_also_an_overflow(self) -> None:
        # 1 × INT64_MAX fits int64: only the long sku and the cart bound are reported
        faulty = good_line(quantity=1, unit_price_minor=INT64_MAX, sku="s" * 257)
        assert paths(validate_cart(cart_of(faulty))) == ["cart.lines[0].sku", "cart.lines"]

    def test_delivery_at_10_to_the_15_is_accepted_and_then_no_line_may_cost_more(self) -> None:
        # a free line + 10^15 of delivery = 10^15: at the bound
        free = good_line(quantity=1, unit_price_minor=0)
        assert validate_cart(cart_of(free, delivery_minor=10**15)) == []
        # 1 minor of goods + 10^15 of delivery = 10^15 + 1: the lines are what is too much
        one = good_line(quantity=1, unit_price_minor=1)
        assert paths(validate_cart(cart_of(one, delivery_minor=10**15))) == ["cart.lines"]

    def test_total_at_10_to_the_15_is_accepted_and_one_more_is_not(self) -> None:
        # 999 999 999 999 999 + 1 = 10^15 (delivery counts); + 2 = 10^15 + 1
        at = cart_of(good_line(quantity=1, unit_price_minor=10**15 - 1), delivery_minor=1)
        assert validate_cart(at) == []
        over = cart_of(good_line(quantity=1, unit_price_minor=10**15 - 1), delivery_minor=2)
        assert paths(validate_cart(over)) == ["cart.lines"]

    def test_the_total_is_before_discounts(self) -> None:
        # 2 × 5 × 10^14 = 10^15 + 0 delivery: at the bound, even discounted to 1 minor
        line = good_line(quantity=2, unit_price_minor=5 * 10**14, discount_minor=10**15 - 1)
        assert validate_cart(cart_of(line)) == []
        assert paths(validate_cart(cart_of(line, good_line("b")))) == ["cart.lines"]  # + 2 × 500

    def test_1000_lines_at_the_largest_price_that_fits(self) -> None:
        # 10^15 / 1 000 lines = 10^12 minor each: exactly 10^15
        lines = [good_line(f"l{i}", quantity=1, unit_price_minor=10**12) for i in range(1_000)]
        assert validate_cart(cart_of(*lines)) == []
        lines[0] = good_line("l0", quantity=1, unit_price_minor=10**12 + 1)
        assert paths(validate_cart(cart_of(*lines))) == ["cart.lines"]

    def test_sum_of_lines_overflowing_int64_is_refused(self) -> None:
        # each line 2^62 fits int64; together 2^63 = INT64_MAX + 1, far above 10^15
        cart = cart_of(
            good_line("a", quantity=1, unit_price_minor=2**62),
            good_line("b", quantity=1, unit_price_minor=2**62),
        )
        assert paths(validate_cart(cart)) == ["cart.lines"]

    def test_delivery_above_the_bound(self) -> None:
        # delivery INT64_MAX alone: the delivery field is named, not the lines as well
        over = cart_of(good_line(quantity=1, unit_price_minor=1), delivery_minor=INT64_MAX)
        assert validate_cart(over) == [
            Violation("cart.delivery_minor", "must be at most 1000000000000000")
        ]

    def test_never_two_violations_for_one_field(self) -> None:
        long_id = "x" * 257
        cart = cart_of(
            good_line(long_id),
            good_line(long_id),  # too long and a duplicate: still one violation
            good_line("n", quantity=-1, unit_price_minor=-(2**63)),  # negatives, product 2^63
        )
        counts = Counter(paths(validate_cart(cart)))
        assert counts == {
            "cart.lines[0].line_id": 1,
            "cart.lines[1].line_id": 1,
            "cart.lines[2].quantity": 1,
            "cart.lines[2].unit_price_minor": 1,
        }

    def test_a_duplicate_line_id_of_256_characters(self) -> None:
        # 256 characters is a valid id, so a second line with it is a duplicate
        at_limit = "x" * 256
        violations = validate_cart(cart_of(good_line(at_limit), good_line(at_limit)))
        assert violations == [Violation("cart.lines[1].line_id", f"duplicate line_id {at_limit!r}")]

    def test_no_units_is_one_violation_whatever_the_discounts(self) -> None:
        # quantity 0 makes no line total: its discounts are not held to one
        line = good_line(quantity=0, discount_minor=5, promo_discount_minor=3)
        violations = validate_cart(cart_of(line, promo_code="P"))
        assert violations == [Violation("cart.lines[0].quantity", "must be > 0")]

    def test_a_free_line_takes_no_discount(self) -> None:
        # unit price 0: the line total is 1 × 0 = 0, and a discount of 1 exceeds it
        free = good_line(quantity=1, unit_price_minor=0, discount_minor=1)
        violations = validate_cart(cart_of(free))
        assert violations == [
            Violation("cart.lines[0].discount_minor", "discounts (1 + 0) exceed the line total 0")
        ]
        assert validate_cart(cart_of(good_line(quantity=1, unit_price_minor=0))) == []

    def test_negative_factors_do_not_make_a_line_total(self) -> None:
        # (−1) × (−2^62) = 2^62 twice would "overflow" the sum; only the bad factors are reported
        bad = good_line("a", quantity=-1, unit_price_minor=-(2**62))
        cart = cart_of(bad, replace(bad, line_id="b"))
        assert paths(validate_cart(cart)) == [
            "cart.lines[0].quantity",
            "cart.lines[0].unit_price_minor",
            "cart.lines[1].quantity",
            "cart.lines[1].unit_price_minor",
        ]


class TestValidateString:
    def test_required(self) -> None:
        assert validate_string("", field="f", required=True) == [
            Violation("f", "must not be empty")
        ]
        assert validate_string("", field="f", required=False) == []

    def test_request_id_limit(self) -> None:
        assert validate_string("r" * 128, field="request_id", required=True, max_len=128) == []
        assert paths(
            validate_string("r" * 129, field="request_id", required=True, max_len=128)
        ) == ["request_id"]
