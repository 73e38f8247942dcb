"""accept-language (RFC 9110 §12.5.4): the first offered language by weight, else the default."""

import pytest

from server.texts.language import negotiate, ranges

OFFERED = ("ru", "en")


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        ("en;q=0.5, ru", "en", "ru"),  # ru weighs 1, en 0.5: Russian, whatever the default
        ("en;q=0.5, ru", "ru", "ru"),
        ("en", "ru", "en"),
        ("ru-RU,ru;q=0.9,en-US;q=0.8", "en", "ru"),  # a browser's: ru-RU falls back to ru
        ("en-GB, ru;q=0.9", "ru", "en"),
        ("de", "ru", "ru"),  # unsupported: the program's default
        ("de", "en", "en"),
        ("de, en;q=0.1", "ru", "en"),  # the first supported one, even at a low weight
        ("", "ru", "ru"),  # absent: the default
        ("*", "en", "en"),
        ("ru;q=0, en;q=0.2", "ru", "en"),  # q=0 refuses Russian
        ("en;q=abc, ru;q=0.3", "en", "ru"),  # a malformed weight voids its entry
        ("e!n, ru", "en", "ru"),  # not a language range: skipped
        ("EN;Q=0.7 , RU;q=0.8", "en", "ru"),  # case-insensitive, spaces allowed
    ],
)
def test_negotiate(header: str, default: str, expected: str) -> None:
    assert negotiate(header, OFFERED, default) == expected


def test_ranges_are_sorted_by_weight_keeping_order_on_ties() -> None:
    assert ranges("fr;q=0.3, en, de;q=0.3, ru") == [
        ("en", 1.0),
        ("ru", 1.0),
        ("fr", 0.3),
        ("de", 0.3),
    ]
