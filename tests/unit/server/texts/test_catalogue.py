"""Every reason and every binding constraint has a text in every shipped language."""

from pathlib import Path

import pytest
from babel import Locale

from loyalty.v1 import errors_pb2, redemption_pb2
from pricing.caps import Constraint
from pricing.program import SHIPPED_LANGUAGES
from server.api.errors import TABLE
from server.texts.catalogue import KNOWN, NOUNS, SHIPPED, placeholders


def _names(enum: object, prefix: str) -> list[str]:
    values = enum.keys()  # type: ignore[attr-defined]
    return [name.removeprefix(prefix) for name in values if not name.endswith("_UNSPECIFIED")]


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
def test_every_error_reason_has_a_text(language: str) -> None:
    reasons = _names(errors_pb2.ErrorReason, "ERROR_REASON_")
    missing = [r for r in reasons if f"error.{r}" not in SHIPPED[language]]
    assert missing == []
    # and the table's reasons are all among them
    assert {reason for _, reason in TABLE.values()} <= set(reasons)


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
def test_every_binding_constraint_has_a_text(language: str) -> None:
    wire = _names(redemption_pb2.BindingConstraint, "BINDING_CONSTRAINT_")
    assert sorted(wire) == sorted(c.value for c in Constraint)
    missing = [c for c in wire if f"binding.{c}" not in SHIPPED[language]]
    assert missing == []


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
def test_every_plural_category_of_the_language_has_each_noun(language: str) -> None:
    categories = set(Locale.parse(language).plural_form.tags) | {"other"}
    for noun in NOUNS:
        forms = {key.split(".")[1] for key in SHIPPED[language] if key.startswith(noun + ".")}
        assert forms == categories, (noun, language)


def test_languages_have_the_same_messages_with_the_same_placeholders() -> None:
    def sentences(language: str) -> dict[str, frozenset[str]]:
        return {
            key: placeholders(template)
            for key, template in SHIPPED[language].items()
            if key.split(".")[0] not in NOUNS
        }

    assert sentences("ru") == sentences("en")
    assert all(KNOWN[key] == names for key, names in sentences("ru").items())


def test_docs_list_every_message() -> None:
    docs = (Path(__file__).resolve().parents[4] / "docs" / "languages.md").read_text()
    missing = [key for key in KNOWN if key.split(".")[0] not in NOUNS and f"`{key}`" not in docs]
    assert missing == []
