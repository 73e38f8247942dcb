"""pricing.program: both shipped programs load as docs/rules.md §5 says; bad files name the key."""

from pathlib import Path

import pytest

from pricing.cart import CartLine, LineKind
from pricing.program import (
    ExclusionRule,
    PaymentMethodOverride,
    Program,
    ProgramConfigError,
    PromoPolicy,
    SelectionMode,
    Source,
    Tier,
    load_program,
    load_programs,
)

PROGRAMS = Path(__file__).resolve().parents[3] / "programs"


class TestStomatorg:
    def test_identity_and_units(self, stomatorg: Program) -> None:
        assert stomatorg.id == "stomatorg"
        assert stomatorg.name == "Стоматорг"
        assert stomatorg.version == 1
        assert stomatorg.currency == "RUB"
        assert stomatorg.point_value_minor == 100
        assert stomatorg.time_zone == "Europe/Moscow"
        assert stomatorg.zone.key == "Europe/Moscow"

    def test_tiers(self, stomatorg: Program) -> None:
        # docs/rules.md §5: earn / redeem 3/3, 5/5, 7/10, 10/15 %; thresholds: orders, minor units
        assert stomatorg.tiers == (
            Tier("base", earn_rate_bp=300, redeem_cap_bp=300),
            Tier("regular", 500, 500, min_spend_minor=10_000_000, min_orders=3),
            Tier("partner", 700, 1000, min_spend_minor=50_000_000, min_orders=10),
            Tier("vip", 1000, 1500, min_spend_minor=100_000_000, min_orders=15),
        )
        assert stomatorg.tier("partner").redeem_cap_bp == 1000
        with pytest.raises(KeyError):
            stomatorg.tier("gold")

    def test_sources(self, stomatorg: Program) -> None:
        assert dict(stomatorg.sources) == {
            "loyalty": Source("loyalty", expiry_days=90),
            "action": Source("action", expiry_days=None),
            "promo": Source("promo", expiry_days=90),
        }
        assert stomatorg.accrual_source == "loyalty"

    def test_policies(self, stomatorg: Program) -> None:
        assert stomatorg.selection_mode is SelectionMode.ANY_UP_TO_MAX
        assert stomatorg.promo_policy is PromoPolicy.EXCLUSIVE
        assert stomatorg.services_redeemable is False
        assert stomatorg.accrual_delay_days == 7
        assert stomatorg.tier_window_days == 365
        assert dict(stomatorg.payment_methods) == {}
        assert stomatorg.exclusions == (ExclusionRule("no_points", tags=frozenset({"no_points"})),)


class TestDenco:
    def test_identity_and_units(self, denco: Program) -> None:
        assert denco.id == "denco"
        assert denco.version == 1
        assert denco.currency == "RUB"
        assert denco.point_value_minor == 100
        assert denco.time_zone == "Europe/Moscow"

    def test_one_tier(self, denco: Program) -> None:
        assert denco.tiers == (Tier("standard", earn_rate_bp=0, redeem_cap_bp=5000),)

    def test_sources(self, denco: Program) -> None:
        assert dict(denco.sources) == {
            "loyalty": Source("loyalty", expiry_days=365),
            "promo": Source("promo", expiry_days=365, cap_bp=5000),
        }

    def test_policies(self, denco: Program) -> None:
        assert denco.selection_mode is SelectionMode.ALL_OR_NOTHING
        assert denco.promo_policy is PromoPolicy.STACK
        assert denco.services_redeemable is True
        assert denco.accrual_delay_days == 0

    def test_denco_card(self, denco: Program) -> None:
        assert dict(denco.payment_methods) == {
            "denco_card": PaymentMethodOverride(
                "denco_card",
                redeem_cap_bp=9999,
                source_cap_bp={"loyalty": 9999},
                other_sources_cap_bp=5000,
            )
        }

    def test_exclusions(self, denco: Program) -> None:
        # brands are stored case-folded: IQOS → iqos, Reima → reima
        assert denco.exclusions == (
            ExclusionRule("gift_certificates", categories=frozenset({"gift_certificates"})),
            ExclusionRule("tickets", categories=frozenset({"air_tickets", "rail_tickets"})),
            ExclusionRule(
                "digital_media",
                categories=frozenset({"digital_books", "digital_magazines", "audiobooks"}),
            ),
            ExclusionRule("playstation_cards", categories=frozenset({"playstation_cards"})),
            ExclusionRule("iqos", brands=frozenset({"iqos"})),
            ExclusionRule("reima_lassie", brands=frozenset({"reima", "lassie"})),
        )


def test_load_programs_by_id() -> None:
    programs = load_programs(PROGRAMS)
    assert sorted(programs) == ["denco", "stomatorg"]
    assert programs["denco"].selection_mode is SelectionMode.ALL_OR_NOTHING


# A small valid program; each bad-file test breaks one thing in it.
VALID = """\
id = "shop"
version = 3
currency = "RUB"
point_value_minor = 100
time_zone = "Europe/Moscow"
selection_mode = "ANY_UP_TO_MAX"
promo_policy = "STACK"
services_redeemable = true
accrual_source = "loyalty"

[[tiers]]
id = "one"
earn_rate_bp = 100
redeem_cap_bp = 2000

[[tiers]]
id = "two"
earn_rate_bp = 200
redeem_cap_bp = 3000
min_orders = 2
min_spend_minor = 1000

[sources.loyalty]
expiry_days = 30

[sources.gift]
cap_bp = 1000

[[payment_methods]]
id = "card"
redeem_cap_bp = 4000
source_cap_bp = { loyalty = 4000 }

[[exclusions]]
id = "odd"
skus = ["SKU-1"]
kinds = ["service"]
tags = ["No_Points"]
"""


def write(tmp_path: Path, text: str, name: str = "shop.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_small_program(tmp_path: Path) -> None:
    program = load_program(write(tmp_path, VALID))
    assert program.id == "shop"
    assert program.name == "shop"  # name defaults to the id
    assert program.version == 3
    assert program.accrual_delay_days == 0  # default
    assert program.tier_window_days == 365  # default
    assert program.sources["gift"] == Source("gift", expiry_days=None, cap_bp=1000)
    card = program.payment_methods["card"]
    assert card.other_sources_cap_bp is None
    rule = program.exclusions[0]
    # values are case-folded; kinds become LineKind
    assert rule.skus == frozenset({"sku-1"})
    assert rule.tags == frozenset({"no_points"})
    assert rule.kinds == frozenset({LineKind.SERVICE})
    assert rule.matches(CartLine("l", 1, 100, sku="sku-1"))
    assert rule.matches(CartLine("l", 1, 100, tags=("NO_POINTS",)))
    assert rule.matches(CartLine("l", 1, 100, kind=LineKind.SERVICE))
    assert not rule.matches(CartLine("l", 1, 100, sku="sku-2"))


def test_match_keys_are_trimmed_and_casefolded_once_at_load(tmp_path: Path) -> None:
    # docs/rules.md §3: match keys compare after trimming surrounding whitespace and ignoring case.
    text = VALID.replace('skus = ["SKU-1"]', 'skus = [" SKU-1 "]').replace(
        'id = "card"', 'id = " Card "'
    )
    program = load_program(write(tmp_path, text))
    assert program.exclusions[0].skus == frozenset({"sku-1"})
    assert program.exclusions[0].matches(CartLine("l", 1, 100, sku="\tsku-1 "))
    assert program.payment_override("CARD") is program.payment_override("  card\n")
    assert program.payment_override("card") is not None
    assert program.payment_override("cart") is None


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ('currency = "RUB"\n', "", "currency", "is required"),
        ('currency = "RUB"', 'currency = "rub"', "currency", "ISO-4217"),
        ("version = 3", "version = true", "version", "must be int, got bool"),
        ("version = 3", "version = -1", "version", "must be >= 0"),
        ("point_value_minor = 100", "point_value_minor = 0", "point_value_minor", "must be > 0"),
        ('"Europe/Moscow"', '"Mars/Olympus"', "time_zone", "unknown time zone"),
        ('"ANY_UP_TO_MAX"', '"SOME"', "selection_mode", "must be one of"),
        ('promo_policy = "STACK"', 'promo_policy = "BOTH"', "promo_policy", "must be one of"),
        ('accrual_source = "loyalty"', 'accrual_source = "x"', "accrual_source", "not one of"),
        ('id = "shop"', 'id = ""', "id", "1..256"),
        ('id = "shop"', f'id = "{"s" * 257}"', "id", "1..256"),
        ("redeem_cap_bp = 3000", "redeem_cap_bp = 10001", "tiers[1].redeem_cap_bp", "0..10000"),
        ("earn_rate_bp = 100", 'earn_rate_bp = "1"', "tiers[0].earn_rate_bp", "must be int"),
        ("min_orders = 2", "min_orders = 2\nbonus = 1", "tiers[1].bonus", "unknown key"),
        ('id = "two"', 'id = "one"', "tiers", "unique"),
        ("expiry_days = 30", "expiry_days = 0", "sources.loyalty.expiry_days", "must be > 0"),
        ("expiry_days = 30", "expiry = 30", "sources.loyalty.expiry", "unknown key"),
        ("cap_bp = 1000", "cap_bp = -5", "sources.gift.cap_bp", "0..10000"),
        (
            "source_cap_bp = { loyalty = 4000 }",
            "source_cap_bp = { bonus = 4000 }",
            "payment_methods[0].source_cap_bp.bonus",
            "not one of [sources]",
        ),
        (
            "source_cap_bp = { loyalty = 4000 }",
            "source_cap_bp = { loyalty = 20000 }",
            "payment_methods[0].source_cap_bp.loyalty",
            "0..10000",
        ),
        ('kinds = ["service"]', 'kinds = ["robot"]', "exclusions[0].kinds", "unknown kind"),
        ('skus = ["SKU-1"]', 'skus = [""]', "exclusions[0].skus", "non-empty strings"),
        ('skus = ["SKU-1"]', 'skus = ["  "]', "exclusions[0].skus", "non-empty strings"),
        ("expiry_days = 30", "expiry_days = 36501", "sources.loyalty.expiry_days", "36500"),
        (
            'accrual_source = "loyalty"',
            'accrual_source = "loyalty"\naccrual_delay_days = 36501',
            "accrual_delay_days",
            "at most 36500",
        ),
        (
            'accrual_source = "loyalty"',
            'accrual_source = "loyalty"\ntier_window_days = 40000',
            "tier_window_days",
            "at most 36500",
        ),
        ('id = "card"', 'id = " "', "payment_methods[0].id", "must not be empty"),
        ('id = "odd"', 'id = "odd"\ncolour = "red"', "exclusions[0].colour", "unknown key"),
        ("services_redeemable = true", "services_redeemable = 1", "services_redeemable", "bool"),
        ('promo_policy = "STACK"', 'promo_policy = "STACK"\nflavour = 1', "flavour", "unknown"),
    ],
)
def test_bad_file_names_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ProgramConfigError) as caught:
        load_program(path)
    error = caught.value
    assert error.path == str(path)
    assert error.key == key
    assert problem in error.problem
    assert str(error).startswith(f"{path}: {key}: ")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("redeem_cap_bp = 3000", "redeem_cap_bp = 10000"),  # the top of 0..10000: all of it
        ("cap_bp = 1000", "cap_bp = 0"),  # the bottom of 0..10000
        ("version = 3", "version = 0"),  # counts start at 0
        ('id = "shop"', f'id = "{"s" * 256}"'),  # the longest id
        ("expiry_days = 30", "expiry_days = 1"),  # the shortest expiry
        ("expiry_days = 30", "expiry_days = 36500"),  # the longest delay (pricing/bounds.py)
        ("point_value_minor = 100", "point_value_minor = 1"),  # the smallest point value
    ],
)
def test_values_at_the_edge_of_what_is_allowed_load(tmp_path: Path, old: str, new: str) -> None:
    assert old in VALID
    load_program(write(tmp_path, VALID.replace(old, new, 1)))


def test_tiers_may_share_a_threshold(tmp_path: Path) -> None:
    # "three" asks as much spend (1000) and as many orders (2) as "two": not lower, so allowed
    text = VALID.replace(
        "[sources.loyalty]",
        '[[tiers]]\nid = "three"\nearn_rate_bp = 300\nredeem_cap_bp = 3000\n'
        "min_orders = 2\nmin_spend_minor = 1000\n\n[sources.loyalty]",
    )
    program = load_program(write(tmp_path, text))
    assert [t.id for t in program.tiers] == ["one", "two", "three"]


def test_first_tier_may_not_have_thresholds(tmp_path: Path) -> None:
    text = VALID.replace("redeem_cap_bp = 2000", "redeem_cap_bp = 2000\nmin_orders = 1")
    with pytest.raises(ProgramConfigError) as caught:
        load_program(write(tmp_path, text))
    assert caught.value.key == "tiers[0]"


def test_tiers_lowest_first(tmp_path: Path) -> None:
    text = (
        VALID + '\n[[tiers]]\nid = "three"\nearn_rate_bp = 1\nredeem_cap_bp = 1\nmin_orders = 1\n'
    )
    with pytest.raises(ProgramConfigError) as caught:
        load_program(write(tmp_path, text))
    assert caught.value.key == "tiers[2]"
    assert "lowest threshold first" in caught.value.problem


def test_no_tiers(tmp_path: Path) -> None:
    text = VALID.split("[[tiers]]")[0] + "tiers = []\n[sources.loyalty]\n"
    with pytest.raises(ProgramConfigError) as caught:
        load_program(write(tmp_path, text))
    assert caught.value.key == "tiers"


def test_exclusion_that_matches_nothing(tmp_path: Path) -> None:
    text = VALID + '\n[[exclusions]]\nid = "empty"\n'
    with pytest.raises(ProgramConfigError) as caught:
        load_program(write(tmp_path, text))
    assert caught.value.key == "exclusions[1]"
    assert "matches nothing" in caught.value.problem


def test_duplicate_exclusion_ids(tmp_path: Path) -> None:
    text = VALID + '\n[[exclusions]]\nid = "odd"\ntags = ["x"]\n'
    with pytest.raises(ProgramConfigError) as caught:
        load_program(write(tmp_path, text))
    assert caught.value.key == "exclusions"


def test_not_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "id = \n")
    with pytest.raises(ProgramConfigError) as caught:
        load_program(path)
    assert caught.value.path == str(path)
    assert caught.value.key == "(file)"
    assert "not valid TOML" in caught.value.problem


def test_program_id_defined_twice(tmp_path: Path) -> None:
    write(tmp_path, VALID, "a.toml")
    second = write(tmp_path, VALID, "b.toml")
    with pytest.raises(ProgramConfigError) as caught:
        load_programs(tmp_path)
    assert caught.value.path == str(second)
    assert caught.value.key == "id"
    assert "defined twice" in caught.value.problem


def test_languages_and_names_of_the_shipped_programs(stomatorg: Program, denco: Program) -> None:
    # docs/rules.md §10: stomatorg's tier names from its rules; both programs answer in Russian
    assert [t.names["ru"] for t in stomatorg.tiers] == [
        "Базовый", "Постоянный клиент", "Партнер", "VIP клиент",
    ]  # fmt: skip
    assert (stomatorg.default_language, denco.default_language) == ("ru", "ru")
    assert denco.exclusions[4].names == {"ru": "товары IQOS", "en": "IQOS products"}
    assert set(denco.texts) == {"ru", "en"} and "binding.TIER_CAP" in denco.texts["ru"]
