"""The shipped messages, Russian and English (docs/rules.md §10), and the placeholders each takes.

A message is a `str.format` template with named placeholders; the values arrive already
formatted for the language (money, points with their plural form, names). Counted nouns
stand where Russian needs no case other than the nominative or accusative ("можно списать
{points}"), so "1 балл", "2 балла", "5 баллов" read right in every sentence.

Counted nouns are messages too, one per CLDR plural category of the language
(`points.one`, `points.few` ...), with the placeholder {count}. A program file may override
any message for its shoppers ([texts.ru] in programs/*.toml).
"""

from string import Formatter

# Nouns counted in messages; a language gives one form per CLDR plural category it has.
NOUNS = ("points", "orders", "units")

RU: dict[str, str] = {
    "points.one": "{count} балл",
    "points.few": "{count} балла",
    "points.many": "{count} баллов",
    "points.other": "{count} балла",
    "orders.one": "{count} заказ",
    "orders.few": "{count} заказа",
    "orders.many": "{count} заказов",
    "orders.other": "{count} заказа",
    "units.one": "{count} шт.",
    "units.few": "{count} шт.",
    "units.many": "{count} шт.",
    "units.other": "{count} шт.",
    # Why an option's maximum is what it is: one per BindingConstraint.
    "binding.NONE": "Можно списать {points}: на этой сумме сходятся сразу несколько ограничений",
    "binding.NO_ELIGIBLE_LINES": "В корзине нет товаров, которые можно оплатить баллами",
    "binding.PROMO_CONFLICT": (
        "Промокод «{promo_code}» и баллы вместе не действуют: с промокодом вы платите {payable}"
    ),
    "binding.TIER_CAP": (
        "Уровень «{tier}» позволяет оплатить баллами до {percent} от {base} — {points}"
    ),
    "binding.TIER_CAP.payment_method": (
        "При оплате {method} баллами можно оплатить до {percent} от {base} — {points}"
    ),
    "binding.SOURCE_CAP": (
        "{source} оплачивают не больше {percent} от {base} — {cap}; всего можно списать {points}"
    ),
    "binding.BALANCE": "На счёте {balance}: можно списать {points}",
    "binding.LINE_GRANULARITY": (
        "Каждую позицию можно оплатить баллами только в пределах её цены в целых баллах: "
        "всего {points}"
    ),
    # Why a line takes no points.
    "excluded.rule": "Баллами не оплачиваются {rule}",
    "excluded.category": "Товары категории «{value}» баллами не оплачиваются",
    "excluded.brand": "Товары бренда «{value}» баллами не оплачиваются",
    "excluded.sku": "Товар «{value}» баллами не оплачивается",
    "excluded.tag": "Товары с пометкой «{value}» баллами не оплачиваются",
    "excluded.services": "Услуги баллами не оплачиваются",
    "excluded.goods": "Товары баллами не оплачиваются",
    # What is missing for the next tier.
    "next_tier.orders_and_spend": "Ещё {orders} и {spend} до уровня «{tier}»",
    "next_tier.orders": "Ещё {orders} до уровня «{tier}»",
    "next_tier.spend": "Ещё {spend} до уровня «{tier}»",
    # Errors: one per ErrorReason.
    "error.INVALID_REQUEST": "Запрос заполнен неверно: поле {field}",
    "error.UNKNOWN_SOURCE": "В программе нет источника баллов «{source}»",
    "error.PROGRAM_NOT_FOUND": "Программа лояльности «{program_id}» не найдена",
    "error.ORDER_NOT_FOUND": "Заказ {order_id} не найден",
    "error.IDEMPOTENCY_KEY_REUSED": "Запрос {request_id} уже выполнен с другими данными",
    "error.ORDER_ALREADY_REDEEMED": "Баллы к заказу {order_id} уже применены",
    "error.CURRENCY_MISMATCH": "Корзина в валюте {got}, а программа считает в {expected}",
    "error.PROMO_CONFLICT": (
        "Промокод «{promo_code}» и баллы вместе не действуют: доступна только одна скидка"
    ),
    "error.ALL_OR_NOTHING": (
        "Баллы списываются только целиком: можно применить ровно {maximum} или ничего, "
        "а вы запросили {requested}"
    ),
    "error.EXCEEDS_MAXIMUM": (
        "Вы запросили {requested}, а к этой корзине можно применить максимум {maximum}"
    ),
    "error.EXCEEDS_REMAINING": (
        "По позиции {line_id} можно вернуть ещё {remaining}, а в возврате {requested}"
    ),
    "error.HOLD_EXPIRED": "Срок удержания баллов по заказу {order_id} истёк",
    "error.ORDER_ALREADY_ACCRUED": "Баллы за заказ {order_id} уже начислены",
    "error.CLOCK_OVERRIDE_DISABLED": "Сервер не принимает as_of: подмена времени выключена",
    "error.DATABASE_UNAVAILABLE": "Сервис временно недоступен, повторите запрос позже",
    "error.CONCURRENT_UPDATE": "Счёт сейчас занят другой операцией, повторите запрос",
    "error.HOLD_RELEASED": "Удержание баллов по заказу {order_id} уже снято",
    "error.TOKEN_MISSING": "Для этого запроса нужна авторизация",
    "error.TOKEN_INVALID": "Токен доступа недействителен",
    "error.ROLE_NOT_ALLOWED": "Роли «{role}» не разрешён вызов {method}",
    "error.MALFORMED_REQUEST": "Запрос не удалось прочитать как {message_type}",
    "error.ORDER_CUSTOMER_MISMATCH": "Заказ {order_id} оформлен на другого покупателя",
    "error.ACCRUAL_MISMATCH": "Начисление не совпадает с заказом {order_id}: {field}",
    "error.INVALID_TRANSITION": "Списание баллов нельзя перевести из состояния {source} в {target}",
}

EN: dict[str, str] = {
    "points.one": "{count} point",
    "points.other": "{count} points",
    "orders.one": "{count} order",
    "orders.other": "{count} orders",
    "units.one": "{count} unit",
    "units.other": "{count} units",
    "binding.NONE": "{points} can be spent: several limits meet at this amount",
    "binding.NO_ELIGIBLE_LINES": "Nothing in this cart can be paid with points",
    "binding.PROMO_CONFLICT": (
        "The promo code {promo_code} and points do not combine: with the promo code you pay "
        "{payable}"
    ),
    "binding.TIER_CAP": "The {tier} tier lets points pay up to {percent} of {base}: {points}",
    "binding.TIER_CAP.payment_method": (
        "Paying with {method}, points can pay up to {percent} of {base}: {points}"
    ),
    "binding.SOURCE_CAP": (
        "{source} pay at most {percent} of {base}, which is {cap}; {points} can be spent in all"
    ),
    "binding.BALANCE": "Your account holds {balance}: {points} can be spent",
    "binding.LINE_GRANULARITY": (
        "Points pay each line only up to its price in whole points: {points} in all"
    ),
    "excluded.rule": "Points do not pay for {rule}",
    "excluded.category": "Goods of the category {value} cannot be paid with points",
    "excluded.brand": "Goods of the brand {value} cannot be paid with points",
    "excluded.sku": "The item {value} cannot be paid with points",
    "excluded.tag": "Goods tagged {value} cannot be paid with points",
    "excluded.services": "Services cannot be paid with points",
    "excluded.goods": "Goods cannot be paid with points",
    "next_tier.orders_and_spend": "{orders} and {spend} more to reach the {tier} tier",
    "next_tier.orders": "{orders} more to reach the {tier} tier",
    "next_tier.spend": "{spend} more to reach the {tier} tier",
    "error.INVALID_REQUEST": "The request is malformed: field {field}",
    "error.UNKNOWN_SOURCE": "The program has no points source {source}",
    "error.PROGRAM_NOT_FOUND": "There is no loyalty program {program_id}",
    "error.ORDER_NOT_FOUND": "Order {order_id} was not found",
    "error.IDEMPOTENCY_KEY_REUSED": "Request {request_id} was already made with different data",
    "error.ORDER_ALREADY_REDEEMED": "Points were already applied to order {order_id}",
    "error.CURRENCY_MISMATCH": "The cart is in {got}, but the program prices in {expected}",
    "error.PROMO_CONFLICT": (
        "The promo code {promo_code} and points do not combine: only one discount applies"
    ),
    "error.ALL_OR_NOTHING": (
        "Points are spent all at once: exactly {maximum} or none, not {requested}"
    ),
    "error.EXCEEDS_MAXIMUM": "You asked for {requested}, but this cart takes at most {maximum}",
    "error.EXCEEDS_REMAINING": (
        "Line {line_id} has {remaining} left to return, and the return names {requested}"
    ),
    "error.HOLD_EXPIRED": "The hold on the points of order {order_id} has lapsed",
    "error.ORDER_ALREADY_ACCRUED": "Points for order {order_id} were already accrued",
    "error.CLOCK_OVERRIDE_DISABLED": "This server does not accept as_of: clock override is off",
    "error.DATABASE_UNAVAILABLE": "The service is unavailable for now; please retry later",
    "error.CONCURRENT_UPDATE": "The account is busy with another operation; please retry",
    "error.HOLD_RELEASED": "The hold on the points of order {order_id} was already released",
    "error.TOKEN_MISSING": "This call needs authorization",
    "error.TOKEN_INVALID": "The access token is not valid",
    "error.ROLE_NOT_ALLOWED": "The role {role} may not call {method}",
    "error.MALFORMED_REQUEST": "The request could not be read as a {message_type}",
    "error.ORDER_CUSTOMER_MISMATCH": "Order {order_id} belongs to another customer",
    "error.ACCRUAL_MISMATCH": "The accrual does not match order {order_id}: {field}",
    "error.INVALID_TRANSITION": "A redemption cannot move from {source} to {target}",
}

SHIPPED: dict[str, dict[str, str]] = {"ru": RU, "en": EN}


def placeholders(template: str) -> frozenset[str]:
    """The named placeholders of a `str.format` template ("{points}" → "points")."""
    return frozenset(name for _, name, _, _ in Formatter().parse(template) if name)


def _known() -> dict[str, frozenset[str]]:
    known: dict[str, frozenset[str]] = {}
    for messages in SHIPPED.values():
        for message_id, template in messages.items():
            known[message_id] = known.get(message_id, frozenset()) | placeholders(template)
    return known


# Every message id the service knows, with the placeholders it offers.
KNOWN: dict[str, frozenset[str]] = _known()
