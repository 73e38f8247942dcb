"""A program's own wording: overridden messages and nouns, and a language it adds."""

import dataclasses

from pricing.program import Program
from server.texts.catalogue import EN
from server.texts.texts import Languages


def test_a_program_may_call_its_points_bonuses(stomatorg: Program) -> None:
    # stomatorg's FAQ says «бонусы»: one form per Russian plural category
    bonuses = {
        "points.one": "{count} бонус",
        "points.few": "{count} бонуса",
        "points.many": "{count} бонусов",
        "points.other": "{count} бонуса",
        "binding.BALANCE": "На бонусном счёте {balance}: можно списать {points}",
    }
    program = dataclasses.replace(stomatorg, texts={"ru": bonuses})
    texts = Languages({program.id: program}).texts(program.id, "")
    assert [texts.points(n) for n in (1, 2, 5, 11, 21, 101)] == [
        "1 бонус", "2 бонуса", "5 бонусов", "11 бонусов", "21 бонус", "101 бонус",
    ]  # fmt: skip
    assert texts.say("binding.BALANCE", balance=texts.points(21), points=texts.points(21)) == (
        "На бонусном счёте 21 бонус: можно списать 21 бонус"
    )
    # what it does not override stays as shipped
    assert texts.say("excluded.services") == "Услуги баллами не оплачиваются"


def test_a_program_may_add_a_language_by_giving_every_message(stomatorg: Program) -> None:
    # English wording under another language tag: every message, nouns for en-like
    # categories (German has one and other, as English)
    german = {**EN, "binding.NO_ELIGIBLE_LINES": "Nichts in diesem Warenkorb geht mit Punkten"}
    program = dataclasses.replace(stomatorg, texts={"de": german}, default_language="de")
    languages = Languages({program.id: program})
    assert languages.offered(program.id) == ("ru", "en", "de")
    texts = languages.texts(program.id, "de-AT, en;q=0.5")
    assert texts.language == "de"
    assert texts.say("binding.NO_ELIGIBLE_LINES") == "Nichts in diesem Warenkorb geht mit Punkten"
    assert texts.money(1_000_000) == "10.000,00\u00a0RUB"  # CLDR's German pattern
    assert languages.texts(program.id, "fr").language == "de"  # the program's default
