"""docs/rules.md §10 over a real server: the call's language, explanations, names, localized errors.

stomatorg's base tier pays 3 % with points; 1 point = 100 minor. Russian texts use CLDR's
no-break space (U+00A0) between digit groups and before ₽ and %.
"""

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from tests.e2e.builders import SERVICE, T0, apply_request, cart, grant, line, new_id, ts
from tests.e2e.rpc_errors import failure_of
from tests.support.server import ServerProcess, Stubs

NBSP = "\u00a0"
RU_TIER_CAP = (
    f"Уровень «Базовый» позволяет оплатить баллами до 3{NBSP}% "
    f"от 10{NBSP}000,00{NBSP}₽ — 300 баллов"
)
EN_TIER_CAP = "The Basic tier lets points pay up to 3% of RUB10,000.00: 300 points"


def _quote(stubs: Stubs, customer: str, metadata: tuple[tuple[str, str], ...]) -> object:
    request = redemption_pb.QuoteRedemptionRequest(
        program_id="stomatorg",
        customer_id=customer,
        # 10,000.00 RUB of goods (eligible) and a service (excluded by the services setting)
        cart=cart(line("a", 1, 1_000_000), line("s", 1, 50_000, kind=SERVICE)),
        as_of=ts(T0),
    )
    return stubs.redemption.QuoteRedemption(request, timeout=10, metadata=metadata)


@pytest.fixture(scope="module")
def customer(stubs: Stubs) -> str:
    name = new_id("c")
    grant(stubs, "stomatorg", name, 1_000, "action")  # 3 % of 1,000,000 → 300 < 1,000
    return name


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((("accept-language", "en;q=0.5, ru"),), RU_TIER_CAP),  # q-values honoured
        ((("accept-language", "en"),), EN_TIER_CAP),
        ((("accept-language", "en-US,en;q=0.9"),), EN_TIER_CAP),
        ((("accept-language", "de"),), RU_TIER_CAP),  # unsupported: the program's default
        ((), RU_TIER_CAP),  # absent: the program's default
    ],
)
def test_the_language_of_a_quote(
    stubs: Stubs, customer: str, metadata: tuple[tuple[str, str], ...], expected: str
) -> None:
    response = _quote(stubs, customer, metadata)
    (option,) = response.options  # type: ignore[attr-defined]
    assert option.max_points == 300
    assert option.explanation == expected


def test_excluded_lines_say_why(stubs: Stubs, customer: str) -> None:
    ru = _quote(stubs, customer, ()).options[0]  # type: ignore[attr-defined]
    en = _quote(stubs, customer, (("accept-language", "en"),)).options[0]  # type: ignore[attr-defined]
    assert [(e.line_id, e.rule_id, e.explanation) for e in ru.excluded_lines] == [
        ("s", "services", "Услуги баллами не оплачиваются")
    ]
    assert [e.explanation for e in en.excluded_lines] == ["Services cannot be paid with points"]


def test_account_tier_names_and_what_the_next_tier_needs(stubs: Stubs) -> None:
    request = account_pb.GetAccountRequest(
        program_id="stomatorg", customer_id=new_id("c"), as_of=ts(T0)
    )
    ru = stubs.account.GetAccount(request, timeout=10)
    en = stubs.account.GetAccount(request, timeout=10, metadata=(("accept-language", "en"),))
    # a new customer: base tier; regular needs 3 orders and 100,000.00 RUB
    assert (ru.tier_id, ru.tier_name, ru.next_tier.tier_name) == (
        "base",
        "Базовый",
        "Постоянный клиент",
    )
    assert ru.next_tier.explanation == (
        f"Ещё 3 заказа и 100{NBSP}000,00{NBSP}₽ до уровня «Постоянный клиент»"
    )
    assert (en.tier_name, en.next_tier.tier_name) == ("Basic", "Regular customer")
    assert en.next_tier.explanation == (
        "3 orders and RUB100,000.00 more to reach the Regular customer tier"
    )


def test_errors_carry_a_localized_message(stubs: Stubs, customer: str) -> None:
    # 301 points asked; the cart allows 300
    request = apply_request("stomatorg", customer, new_id("o"), cart(line("a", 1, 1_000_000)), 301)
    apply = stubs.redemption.ApplyRedemption
    assert failure_of(apply, request).localized == (
        "ru",
        "Вы запросили 301 балл, а к этой корзине можно применить максимум 300 баллов",
    )
    assert failure_of(apply, request, metadata=(("accept-language", "en"),)).localized == (
        "en",
        "You asked for 301 points, but this cart takes at most 300 points",
    )


def test_an_unknown_program_answers_in_english_unless_asked(stubs: Stubs) -> None:
    request = account_pb.GetAccountRequest(program_id="acme", customer_id="c")
    get = stubs.account.GetAccount
    failure = failure_of(get, request)
    assert (failure.code, failure.localized) == (
        grpc.StatusCode.NOT_FOUND,
        ("en", "There is no loyalty program acme"),
    )
    assert failure_of(get, request, metadata=(("accept-language", "ru"),)).localized == (
        "ru",
        "Программа лояльности «acme» не найдена",
    )


@pytest.fixture(scope="module")
def plain(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stubs]:
    log = Path(tmp_path_factory.mktemp("plain")) / "server.log"
    process = ServerProcess(db_url, log_path=log, extra_args=("--no-explanations",)).start()
    yield process.stubs()
    process.stop()


def test_explanations_can_be_turned_off(plain: Stubs, customer: str) -> None:
    option = _quote(plain, customer, ()).options[0]  # type: ignore[attr-defined]
    assert (option.max_points, option.explanation) == (300, "")
    assert [e.explanation for e in option.excluded_lines] == [""]
