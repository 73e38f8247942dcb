"""The shipped programs with their texts, per language."""

from pathlib import Path

import pytest

from pricing.program import Program, load_programs
from server.texts.texts import Languages, Texts

PROGRAMS = Path(__file__).resolve().parents[4] / "programs"
NBSP = "\u00a0"  # CLDR's group separator and the space before ₽ and % in Russian


@pytest.fixture(scope="session")
def programs() -> dict[str, Program]:
    return load_programs(PROGRAMS)


@pytest.fixture(scope="session")
def languages(programs: dict[str, Program]) -> Languages:
    return Languages(programs)


@pytest.fixture(scope="session")
def stomatorg(programs: dict[str, Program]) -> Program:
    return programs["stomatorg"]


@pytest.fixture(scope="session")
def denco(programs: dict[str, Program]) -> Program:
    return programs["denco"]


def texts_of(languages: Languages, program_id: str, language: str) -> Texts:
    return languages.program_texts(program_id, language)
