"""Every error of the table leaves with a LocalizedMessage: exact sentences, both languages."""

import pytest
from google.rpc import error_details_pb2, status_pb2

from loyalty.v1 import errors_pb2
from pricing import errors as domain
from server.api.errors import TABLE, to_status
from server.api.refusals import MalformedRequest, RoleNotAllowed, TokenInvalid, TokenMissing
from server.service.errors import ClockOverrideDisabled, IdempotencyKeyReused
from server.store.db import CallDeadlineExceeded, ConcurrentUpdate, DatabaseUnavailable
from server.texts.texts import Languages
from tests.unit.server.texts.conftest import texts_of

ROLE_METHOD = "/loyalty.v1.RedemptionService/ReverseRedemption"

# (error, reason, Russian, English), written by hand.
CASES: list[tuple[Exception, str, str, str]] = [
    (
        domain.InvalidArgument([domain.Violation("cart.lines[0].quantity", "must be > 0")]),
        "INVALID_REQUEST",
        "Запрос заполнен неверно: поле cart.lines[0].quantity",
        "The request is malformed: field cart.lines[0].quantity",
    ),
    (
        domain.UnknownSource(field="source", source="gift", known=["loyalty"]),
        "UNKNOWN_SOURCE",
        "В программе нет источника баллов «gift»",
        "The program has no points source gift",
    ),
    (
        domain.ProgramNotFound("acme"),
        "PROGRAM_NOT_FOUND",
        "Программа лояльности «acme» не найдена",
        "There is no loyalty program acme",
    ),
    (
        domain.OrderNotFound("o-1"),
        "ORDER_NOT_FOUND",
        "Заказ o-1 не найден",
        "Order o-1 was not found",
    ),
    (
        IdempotencyKeyReused("r-1"),
        "IDEMPOTENCY_KEY_REUSED",
        "Запрос r-1 уже выполнен с другими данными",
        "Request r-1 was already made with different data",
    ),
    (
        domain.OrderAlreadyRedeemed("o-1"),
        "ORDER_ALREADY_REDEEMED",
        "Баллы к заказу o-1 уже применены",
        "Points were already applied to order o-1",
    ),
    (
        domain.CurrencyMismatch(expected="RUB", got="USD"),
        "CURRENCY_MISMATCH",
        "Корзина в валюте USD, а программа считает в RUB",
        "The cart is in USD, but the program prices in RUB",
    ),
    (
        domain.PromoConflict("SALE10"),
        "PROMO_CONFLICT",
        "Промокод «SALE10» и баллы вместе не действуют: доступна только одна скидка",
        "The promo code SALE10 and points do not combine: only one discount applies",
    ),
    (
        domain.AllOrNothing(requested=1, maximum=21),
        "ALL_OR_NOTHING",
        "Баллы списываются только целиком: можно применить ровно 21 балл или ничего, "
        "а вы запросили 1 балл",
        "Points are spent all at once: exactly 21 points or none, not 1 point",
    ),
    (
        domain.ExceedsMaximum(requested=301, maximum=300),
        "EXCEEDS_MAXIMUM",
        "Вы запросили 301 балл, а к этой корзине можно применить максимум 300 баллов",
        "You asked for 301 points, but this cart takes at most 300 points",
    ),
    (
        domain.ExceedsRemaining(line_id="l1", requested=3, remaining=1),
        "EXCEEDS_REMAINING",
        "По позиции l1 можно вернуть ещё 1 шт., а в возврате 3 шт.",
        "Line l1 has 1 unit left to return, and the return names 3 units",
    ),
    (
        domain.HoldExpired("o-1"),
        "HOLD_EXPIRED",
        "Срок удержания баллов по заказу o-1 истёк",
        "The hold on the points of order o-1 has lapsed",
    ),
    (
        domain.HoldReleased("o-1"),
        "HOLD_RELEASED",
        "Удержание баллов по заказу o-1 уже снято",
        "The hold on the points of order o-1 was already released",
    ),
    (
        domain.OrderAlreadyAccrued("o-1"),
        "ORDER_ALREADY_ACCRUED",
        "Баллы за заказ o-1 уже начислены",
        "Points for order o-1 were already accrued",
    ),
    (
        ClockOverrideDisabled(),
        "CLOCK_OVERRIDE_DISABLED",
        "Сервер не принимает as_of: подмена времени выключена",
        "This server does not accept as_of: clock override is off",
    ),
    (
        DatabaseUnavailable("connection refused"),
        "DATABASE_UNAVAILABLE",
        "Сервис временно недоступен, повторите запрос позже",
        "The service is unavailable for now; please retry later",
    ),
    (
        ConcurrentUpdate("lock timeout"),
        "CONCURRENT_UPDATE",
        "Счёт сейчас занят другой операцией, повторите запрос",
        "The account is busy with another operation; please retry",
    ),
    (
        CallDeadlineExceeded("deadline"),
        "CONCURRENT_UPDATE",
        "Счёт сейчас занят другой операцией, повторите запрос",
        "The account is busy with another operation; please retry",
    ),
    (
        TokenMissing(),
        "TOKEN_MISSING",
        "Для этого запроса нужна авторизация",
        "This call needs authorization",
    ),
    (
        TokenInvalid(),
        "TOKEN_INVALID",
        "Токен доступа недействителен",
        "The access token is not valid",
    ),
    (
        RoleNotAllowed(role="checkout", method=ROLE_METHOD),
        "ROLE_NOT_ALLOWED",
        f"Роли «checkout» не разрешён вызов {ROLE_METHOD}",
        f"The role checkout may not call {ROLE_METHOD}",
    ),
    (
        domain.OrderCustomerMismatch(order_id="o-1", customer_id="c-2"),
        "ORDER_CUSTOMER_MISMATCH",
        "Заказ o-1 оформлен на другого покупателя",
        "Order o-1 belongs to another customer",
    ),
    (
        domain.AccrualMismatch("o-1", [domain.Violation("cart.lines[1]", "not in the order")]),
        "ACCRUAL_MISMATCH",
        "Начисление не совпадает с заказом o-1: cart.lines[1]",
        "The accrual does not match order o-1: cart.lines[1]",
    ),
    (
        domain.InvalidTransition(source="REVERSED", target="APPLIED"),
        "INVALID_TRANSITION",
        "Списание баллов нельзя перевести из состояния REVERSED в APPLIED",
        "A redemption cannot move from REVERSED to APPLIED",
    ),
    (
        MalformedRequest("loyalty.v1.QuoteRedemptionRequest"),
        "MALFORMED_REQUEST",
        "Запрос не удалось прочитать как loyalty.v1.QuoteRedemptionRequest",
        "The request could not be read as a loyalty.v1.QuoteRedemptionRequest",
    ),
]


def localized(status: object) -> tuple[str, str, str]:
    """(ErrorInfo reason, LocalizedMessage locale, message) of a status from the table."""
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]  # type: ignore[attr-defined]
    details = status_pb2.Status.FromString(raw).details
    info, message = error_details_pb2.ErrorInfo(), error_details_pb2.LocalizedMessage()
    assert details[0].Unpack(info)
    assert details[-1].Unpack(message)
    return info.reason, message.locale, message.message


@pytest.mark.parametrize(("error", "reason", "ru", "en"), CASES, ids=[c[1] for c in CASES])
def test_each_error_in_each_language(
    languages: Languages, error: Exception, reason: str, ru: str, en: str
) -> None:
    assert localized(to_status(error, texts_of(languages, "stomatorg", "ru"))) == (reason, "ru", ru)
    assert localized(to_status(error, texts_of(languages, "stomatorg", "en"))) == (reason, "en", en)


def test_the_cases_cover_every_class_of_the_table_and_every_reason() -> None:
    covered = {type(error) for error, *_ in CASES}
    assert set(TABLE) <= covered
    reasons = {n.removeprefix("ERROR_REASON_") for n in errors_pb2.ErrorReason.keys()}  # noqa: SIM118
    assert reasons - {"UNSPECIFIED"} == {reason for _, reason, *_ in CASES}
