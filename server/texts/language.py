"""The language of a call: its `accept-language` metadata (RFC 9110 §12.5.4), else a default."""

from collections.abc import Iterable
from functools import lru_cache


def ranges(header: str) -> list[tuple[str, float]]:
    """The language ranges of an Accept-Language value with their weights, best first.

    Malformed entries are skipped; equal weights keep the caller's order.
    """
    found: list[tuple[str, float]] = []
    for entry in header.split(","):
        tag, *params = (part.strip() for part in entry.split(";"))
        if not tag or not _is_range(tag):
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                weight = _qvalue(value.strip())
        if weight >= 0:
            found.append((tag.lower(), weight))
    return sorted(found, key=lambda item: -item[1])


def _is_range(tag: str) -> bool:
    if tag == "*":
        return True
    parts = tag.split("-")
    return (
        0 < len(parts[0]) <= 8
        and parts[0].isascii()
        and parts[0].isalpha()
        and all(0 < len(p) <= 8 and p.isascii() and p.isalnum() for p in parts[1:])
    )


def _qvalue(text: str) -> float:
    """A qvalue ("0" to "1" with up to three decimals); anything else makes the entry void."""
    try:
        value = float(text)
    except ValueError:
        return -1.0
    if not 0 <= value <= 1 or len(text) > 5:
        return -1.0
    return value


@lru_cache(maxsize=1024)
def negotiate(header: str, offered: tuple[str, ...], default: str) -> str:
    """The first offered language the header accepts, by weight; else `default`.

    A range matches an offered language equal to it or to one of its prefixes ("ru-RU" takes
    "ru"); "*" takes the default; q=0 refuses a language.
    """
    weighted = ranges(header)
    refused = {tag for tag, weight in weighted if weight == 0}
    for tag, weight in weighted:
        if weight == 0:
            continue
        if tag == "*":
            if default not in refused:
                return default
            continue
        for candidate in _prefixes(tag):
            if candidate in offered and candidate not in refused:
                return candidate
    return default


def _prefixes(tag: str) -> Iterable[str]:
    parts = tag.split("-")
    for end in range(len(parts), 0, -1):
        yield "-".join(parts[:end])
