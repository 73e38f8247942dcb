"""Shared fixtures for the pricing unit tests: the two shipped reference programs."""

from pathlib import Path

import pytest

from pricing.program import Program, load_program

PROGRAMS = Path(__file__).resolve().parents[3] / "programs"


@pytest.fixture(scope="session")
def stomatorg() -> Program:
    return load_program(PROGRAMS / "stomatorg.toml")


@pytest.fixture(scope="session")
def denco() -> Program:
    return load_program(PROGRAMS / "denco.toml")
