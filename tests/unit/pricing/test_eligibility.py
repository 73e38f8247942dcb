"""pricing.eligibility: which lines points may pay for, and the rule that excluded the rest."""

from dataclasses import replace

import pytest

from pricing.cart import Cart, CartLine, LineKind
from pricing.eligibility import ExcludedLine, classify
from pricing.program import ExclusionRule, Program


def line(line_id: str, price: int = 10_000, **fields: object) -> CartLine:
    return replace(CartLine(line_id, quantity=1, unit_price_minor=price), **fields)


class TestStomatorg:
    def test_no_points_tag_and_services(self, stomatorg: Program) -> None:
        cart = Cart(
            "RUB",
            (
                line("goods", 100_000, discount_minor=5_000),
                line("tagged", 20_000, tags=("sale", "NO_POINTS")),
                line("install", 30_000, kind=LineKind.SERVICE),
                line("more", 7_000),
            ),
            delivery_minor=50_000,
        )
        result = classify(stomatorg, cart)
        assert [x.line_id for x in result.eligible] == ["goods", "more"]
        assert result.excluded == (
            ExcludedLine("tagged", "no_points"),  # the tag matches case-insensitively
            ExcludedLine("install", "services"),  # services excluded by the program's setting
        )
        # eligible base: (100 000 − 5 000) + 7 000 = 102 000; delivery never counts
        assert result.base_minor == 102_000

    def test_services_setting_wins_over_a_rule(self, stomatorg: Program) -> None:
        cart = Cart("RUB", (line("s", kind=LineKind.SERVICE, tags=("no_points",)),))
        assert classify(stomatorg, cart).excluded == (ExcludedLine("s", "services"),)

    def test_everything_excluded_leaves_base_zero(self, stomatorg: Program) -> None:
        cart = Cart("RUB", (line("a", tags=("no_points",)),))
        assert classify(stomatorg, cart).base_minor == 0


class TestDenco:
    @pytest.mark.parametrize(
        ("fields", "rule_id"),
        [
            ({"category": "Gift_Certificates"}, "gift_certificates"),
            ({"category": "AIR_TICKETS"}, "tickets"),
            ({"category": "rail_tickets"}, "tickets"),
            ({"category": "Digital_Books"}, "digital_media"),
            ({"category": "digital_magazines"}, "digital_media"),
            ({"category": "AudioBooks"}, "digital_media"),
            ({"category": "PLAYSTATION_CARDS"}, "playstation_cards"),
            ({"brand": "iqos"}, "iqos"),
            ({"brand": "IQOS"}, "iqos"),
            ({"brand": " IQOS "}, "iqos"),  # issue 13: was not excluded
            ({"brand": "\tIqos\n"}, "iqos"),
            ({"category": " Gift_Certificates "}, "gift_certificates"),
            ({"brand": "REIMA"}, "reima_lassie"),
            ({"brand": "Lassie"}, "reima_lassie"),
        ],
    )
    def test_excluded_goods_case_insensitive(
        self, denco: Program, fields: dict[str, str], rule_id: str
    ) -> None:
        cart = Cart("RUB", (line("ok"), line("x", **fields)))
        result = classify(denco, cart)
        assert result.excluded == (ExcludedLine("x", rule_id),)
        assert [x.line_id for x in result.eligible] == ["ok"]

    def test_services_may_be_paid_with_points(self, denco: Program) -> None:
        cart = Cart("RUB", (line("s", 4_000, kind=LineKind.SERVICE), line("g", 6_000)))
        result = classify(denco, cart)
        assert result.excluded == ()
        # base 4 000 + 6 000 = 10 000
        assert result.base_minor == 10_000

    def test_first_matching_rule_in_file_order(self, denco: Program) -> None:
        # a gift certificate of brand IQOS: gift_certificates is listed before iqos
        cart = Cart("RUB", (line("x", category="gift_certificates", brand="IQOS"),))
        assert classify(denco, cart).excluded == (ExcludedLine("x", "gift_certificates"),)

    def test_similar_names_do_not_match(self, denco: Program) -> None:
        cart = Cart(
            "RUB",
            (line("a", category="gift_certificate"), line("b", brand="IQOS Lite"), line("c")),
        )
        result = classify(denco, cart)
        assert result.excluded == ()
        # 3 × 10 000 = 30 000
        assert result.base_minor == 30_000

    def test_promo_discount_lowers_the_base(self, denco: Program) -> None:
        cart = Cart("RUB", (line("a", 10_000, promo_discount_minor=2_000),), promo_code="P")
        # 10 000 − 2 000 = 8 000 (STACK: points apply after the promo)
        assert classify(denco, cart).base_minor == 8_000


def test_sku_and_kind_rules(denco: Program) -> None:
    rules = (
        ExclusionRule("by_sku", skus=frozenset({"abc-1"})),
        ExclusionRule("by_kind", kinds=frozenset({LineKind.SERVICE})),
    )
    program = replace(denco, exclusions=rules)
    cart = Cart(
        "RUB",
        (line("a", sku="ABC-1"), line("b", kind=LineKind.SERVICE), line("c", sku="abc-2")),
    )
    result = classify(program, cart)
    assert result.excluded == (ExcludedLine("a", "by_sku"), ExcludedLine("b", "by_kind"))
    assert [x.line_id for x in result.eligible] == ["c"]
