"""QuoteRedemption over a real server: caps, binding constraints, promo policies, exclusions.

Every number is worked out by hand from docs/rules.md §4/§5 in the comments; 1 point = 100 minor in
both reference programs.
"""

from loyalty.v1 import redemption_pb2 as r
from tests.e2e.builders import GOODS, SERVICE, account, cart, grant, line, new_id, quote
from tests.support.server import Stubs

ANY_UP_TO_MAX = r.SELECTION_MODE_ANY_UP_TO_MAX
ALL_OR_NOTHING = r.SELECTION_MODE_ALL_OR_NOTHING


def excluded(option: r.RedemptionOption) -> list[tuple[str, str]]:
    return [(e.line_id, e.rule_id) for e in option.excluded_lines]


def allocated(option: r.RedemptionOption) -> list[tuple[str, int, int]]:
    return [(a.line_id, a.points, a.discount_minor) for a in option.allocations]


# ---- stomatorg: base tier, EXCLUSIVE promo, services and `no_points` excluded ----------------


def test_stomatorg_tier_cap_with_excluded_lines_and_delivery(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 1_000, "action")
    response = quote(
        stubs,
        "stomatorg",
        customer,
        cart(
            # 2 × 5,000.00 RUB = 1,000,000 minor, eligible
            line("a", 2, 500_000, kind=GOODS, category="implants"),
            # 1 × 1,000.00 RUB = 100,000 minor, tag no_points → excluded by rule `no_points`
            line("b", 1, 100_000, tags=["no_points"]),
            # a service, 1 × 500.00 RUB = 50,000 minor → excluded by the services setting
            line("c", 1, 50_000, kind=SERVICE),
            delivery_minor=30_000,  # 300.00 RUB, never part of the base
        ),
    )
    assert response.tier_id == "base"
    assert response.spendable_points == 1_000
    assert len(response.options) == 1
    assert response.recommended_option == 0
    option = response.options[0]
    assert not option.keeps_promo
    # eligible base = line a only = 1,000,000 minor
    assert option.eligible_base_minor == 1_000_000
    # base tier cap 3 %: 1,000,000 × 300 / 10,000 = 30,000 minor → 300 points (< balance 1,000)
    assert option.max_points == 300
    assert option.max_discount_minor == 30_000
    # without the tier cap the balance (1,000) would allow more → TIER_CAP binds
    assert option.binding_constraint == r.BINDING_CONSTRAINT_TIER_CAP
    assert option.selection_mode == ANY_UP_TO_MAX
    # all 300 points fall on the only eligible line
    assert allocated(option) == [("a", 300, 30_000)]
    assert excluded(option) == [("b", "no_points"), ("c", "services")]
    # pays 1,000,000 + 100,000 + 50,000 + 30,000 delivery − 30,000 = 1,150,000 minor
    assert option.payable_minor == 1_150_000
    # earns 3 % on goods paid in money: a (1,000,000 − 30,000) + b 100,000 = 1,070,000
    # (exclusions limit spending only; the service and delivery earn nothing)
    # → 32,100 minor → 321 points
    assert option.points_to_earn == 321


def test_stomatorg_balance_binds_and_ties_go_to_the_earlier_line(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 100, "loyalty")
    # three equal lines 1 × 2,000.00 RUB = 200,000 minor each; base 600,000
    response = quote(
        stubs,
        "stomatorg",
        customer,
        cart(line("x", 1, 200_000), line("y", 1, 200_000), line("z", 1, 200_000)),
    )
    option = response.options[0]
    # tier cap 3 % of 600,000 = 18,000 minor → 180 points; balance 100 → max 100
    assert option.max_points == 100
    assert option.binding_constraint == r.BINDING_CONSTRAINT_BALANCE
    # 100 / 3 = 33 each with remainder 1 each; the tie goes to the earliest line
    assert allocated(option) == [("x", 34, 3_400), ("y", 33, 3_300), ("z", 33, 3_300)]
    assert option.payable_minor == 600_000 - 10_000
    # earns 3 % of 590,000 = 17,700 minor → 177 points
    assert option.points_to_earn == 177


def test_stomatorg_no_single_constraint_binds(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 300, "action")
    # 1 × 10,000.00 RUB = 1,000,000 minor; tier cap 3 % = 300 points = the balance, so
    # removing either alone leaves 300 → NONE
    option = quote(stubs, "stomatorg", customer, cart(line("a", 1, 1_000_000))).options[0]
    assert option.max_points == 300
    assert option.binding_constraint == r.BINDING_CONSTRAINT_NONE


def test_stomatorg_no_eligible_lines(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 500, "action")
    option = quote(
        stubs,
        "stomatorg",
        customer,
        cart(line("t", 1, 100_000, tags=["no_points"]), line("s", 1, 40_000, kind=SERVICE)),
    ).options[0]
    assert option.eligible_base_minor == 0
    assert option.max_points == 0
    assert option.binding_constraint == r.BINDING_CONSTRAINT_NO_ELIGIBLE_LINES
    assert allocated(option) == []
    assert excluded(option) == [("t", "no_points"), ("s", "services")]
    assert option.payable_minor == 140_000
    # only the goods line earns: 3 % of 100,000 = 3,000 minor → 30 points
    assert option.points_to_earn == 30


def test_stomatorg_exclusive_promo_recommends_keeping_a_bigger_promo(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 1_000, "action")
    # 1 × 10,000.00 RUB = 1,000,000 minor with 500.00 RUB (50,000) off from the promo code
    response = quote(
        stubs,
        "stomatorg",
        customer,
        cart(
            line("a", 1, 1_000_000, promo_discount_minor=50_000),
            delivery_minor=20_000,
            promo_code="SPRING",
        ),
    )
    keep, drop = response.options
    # keep the promo: no points; pays 950,000 + 20,000 delivery = 970,000
    assert keep.keeps_promo
    assert keep.max_points == 0
    assert keep.binding_constraint == r.BINDING_CONSTRAINT_PROMO_CONFLICT
    assert keep.eligible_base_minor == 950_000
    assert keep.payable_minor == 970_000
    assert allocated(keep) == [("a", 0, 0)]
    # earns 3 % of 950,000 = 28,500 → 285 points
    assert keep.points_to_earn == 285
    # drop the promo: the 50,000 comes back; base 1,000,000 → 3 % = 300 points
    assert not drop.keeps_promo
    assert drop.max_points == 300
    assert drop.eligible_base_minor == 1_000_000
    assert drop.binding_constraint == r.BINDING_CONSTRAINT_TIER_CAP
    assert allocated(drop) == [("a", 300, 30_000)]
    # pays 1,000,000 + 20,000 − 30,000 = 990,000
    assert drop.payable_minor == 990_000
    # earns 3 % of 970,000 = 29,100 → 291 points
    assert drop.points_to_earn == 291
    # 970,000 < 990,000 → keep the promo
    assert response.recommended_option == 0


def test_stomatorg_exclusive_promo_recommends_points_when_cheaper(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 1_000, "action")
    # the promo gives only 100.00 RUB (10,000) off 1,000,000
    response = quote(
        stubs,
        "stomatorg",
        customer,
        cart(
            line("a", 1, 1_000_000, promo_discount_minor=10_000),
            delivery_minor=20_000,
            promo_code="SMALL",
        ),
    )
    keep, drop = response.options
    # keep: 990,000 + 20,000 = 1,010,000; drop: 1,000,000 + 20,000 − 30,000 = 990,000
    assert (keep.payable_minor, drop.payable_minor) == (1_010_000, 990_000)
    assert response.recommended_option == 1


def test_stomatorg_exclusive_promo_tie_keeps_the_promo(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 1_000, "action")
    # the promo gives 300.00 RUB (30,000) off: exactly what 300 points would
    response = quote(
        stubs,
        "stomatorg",
        customer,
        cart(line("a", 1, 1_000_000, promo_discount_minor=30_000), promo_code="EVEN"),
    )
    keep, drop = response.options
    # keep: 970,000; drop: 1,000,000 − 30,000 = 970,000 → tie → keep (index 0)
    assert (keep.payable_minor, drop.payable_minor) == (970_000, 970_000)
    assert response.recommended_option == 0


# ---- denco: 50 %, ALL_OR_NOTHING, STACK promo, services redeemable, denco_card ----------------


def test_denco_stack_promo_exclusions_and_services(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "denco", customer, 2_000, "loyalty")
    response = quote(
        stubs,
        "denco",
        customer,
        cart(
            # 1 × 1,000.00 RUB = 100,000 with 20,000 promo off → net 80,000 (STACK: kept)
            line("a", 1, 100_000, promo_discount_minor=20_000),
            # a service, 1 × 200.00 RUB = 20,000: denco lets points pay for services
            line("s", 1, 20_000, kind=SERVICE),
            # category compares case-insensitively → rule gift_certificates
            line("g", 1, 300_000, category="GIFT_CERTIFICATES"),
            # brand compares case-insensitively → rule reima_lassie
            line("k", 1, 50_000, brand="reima"),
            line("i", 1, 10_000, brand="IQOS"),
            delivery_minor=50_000,
            promo_code="DENCO10",
        ),
    )
    assert response.tier_id == "standard"
    assert response.spendable_points == 2_000
    assert len(response.options) == 1  # STACK: no promo conflict
    option = response.options[0]
    assert option.keeps_promo
    assert option.selection_mode == ALL_OR_NOTHING
    # base = 80,000 + 20,000 = 100,000; 50 % = 50,000 minor → 500 points
    assert option.eligible_base_minor == 100_000
    assert option.max_points == 500
    assert option.max_discount_minor == 50_000
    # without the tier cap: min(granularity 1,000, loyalty balance 2,000) = 1,000 > 500
    assert option.binding_constraint == r.BINDING_CONSTRAINT_TIER_CAP
    # 500 in proportion 80,000 : 20,000 → 400 and 100, exact
    assert allocated(option) == [("a", 400, 40_000), ("s", 100, 10_000)]
    assert excluded(option) == [("g", "gift_certificates"), ("k", "reima_lassie"), ("i", "iqos")]
    # pays 80,000 + 20,000 + 300,000 + 50,000 + 10,000 + 50,000 delivery − 50,000 = 460,000
    assert option.payable_minor == 460_000
    assert option.points_to_earn == 0  # denco earns 0 %


def test_denco_card_lifts_the_cap_to_99_99_percent(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "denco", customer, 2_000, "loyalty")
    the_cart = cart(line("a", 1, 100_000))  # 1 × 1,000.00 RUB = 100,000 minor
    plain = quote(stubs, "denco", customer, the_cart).options[0]
    # 50 % → 50,000 minor → 500 points, TIER_CAP (loyalty has no own cap)
    assert plain.max_points == 500
    assert plain.binding_constraint == r.BINDING_CONSTRAINT_TIER_CAP
    card = quote(stubs, "denco", customer, the_cart, payment_method="denco_card").options[0]
    # 9999 bp: 100,000 × 9,999 / 10,000 = 99,990 minor → 999 points
    assert card.max_points == 999
    assert card.max_discount_minor == 99_900
    assert card.payable_minor == 100
    # total and loyalty are both 999: removing either alone leaves the other → NONE
    assert card.binding_constraint == r.BINDING_CONSTRAINT_NONE
    assert allocated(card) == [("a", 999, 99_900)]


def test_denco_card_keeps_promo_points_at_50_percent(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "denco", customer, 300, "loyalty")
    grant(stubs, "denco", customer, 1_000, "promo")
    the_cart = cart(line("a", 1, 100_000))  # base 100,000 minor
    card = quote(stubs, "denco", customer, the_cart, payment_method="denco_card").options[0]
    # total 99.99 % → 999; loyalty min(999, balance 300) = 300; promo min(50 % → 500, 1,000)
    # = 500; sources together 800 → max 800. Without source caps: 300 + 1,000 → 999.
    assert card.max_points == 800
    assert card.binding_constraint == r.BINDING_CONSTRAINT_SOURCE_CAP
    assert card.payable_minor == 100_000 - 80_000
    plain = quote(stubs, "denco", customer, the_cart).options[0]
    # without the card: total 50 % → 500 (sources would give 300 + 500 = 800)
    assert plain.max_points == 500
    assert plain.binding_constraint == r.BINDING_CONSTRAINT_TIER_CAP


def test_denco_line_granularity_binds(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "denco", customer, 100, "loyalty")
    # three lines of 1.50 RUB (150 minor): base 450 → 99.99 % = 449 minor → 4 points,
    # but each line holds floor(150 / 100) = 1 point → 3
    option = quote(
        stubs,
        "denco",
        customer,
        cart(line("p", 1, 150), line("q", 1, 150), line("u", 1, 150)),
        payment_method="denco_card",
    ).options[0]
    assert option.max_points == 3
    assert option.binding_constraint == r.BINDING_CONSTRAINT_LINE_GRANULARITY
    assert allocated(option) == [("p", 1, 100), ("q", 1, 100), ("u", 1, 100)]
    assert option.payable_minor == 450 - 300


def test_denco_allocation_spills_past_a_full_line(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "denco", customer, 500, "loyalty")
    # nets 199 (holds 1 point) and 10,000 (holds 100); base 10,199 → 99.99 % = 10,197 minor
    # → 101 points = granularity 1 + 100
    option = quote(
        stubs,
        "denco",
        customer,
        cart(line("small", 1, 199), line("big", 1, 10_000)),
        payment_method="denco_card",
    ).options[0]
    assert option.max_points == 101
    # proportional: small 101 × 199 / 10,199 = 1.97, big 99.03 → floors 1 + 99, the last
    # point to small (remainder .97) which is full at 1 → it spills to big → 1 and 100
    assert allocated(option) == [("small", 1, 100), ("big", 100, 10_000)]
    assert option.payable_minor == 10_199 - 10_100


def test_quote_writes_nothing(stubs: Stubs) -> None:
    customer = new_id("c")
    grant(stubs, "stomatorg", customer, 50, "action")
    quote(stubs, "stomatorg", customer, cart(line("a", 1, 1_000_000)))
    assert account(stubs, "stomatorg", customer).spendable_points == 50
