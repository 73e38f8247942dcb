"""Page tokens (docs/rules.md §7): opaque, bound to their program and customer, tamper-evident."""

import base64
from datetime import UTC, datetime

import pytest

from pricing.errors import InvalidArgument
from server.service.page_tokens import Walk, issue, read

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
WALK = Walk(
    highest_entry_id=41,
    up_to=datetime(2030, 5, 1, 12, 0, tzinfo=UTC),
    after_effective_at=datetime(2030, 4, 30, 23, 59, 59, 123456, tzinfo=UTC),
    after_entry_id=17,
)
ACCOUNT = {"program_id": "denco", "customer_id": "c-1"}


def fails(token: str, *, key: bytes = KEY, **account: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        read(key, token, **(account or ACCOUNT))
    assert [v.field for v in caught.value.violations] == ["page_token"]


def test_a_token_reads_back_the_walk_it_was_issued_for() -> None:
    token = issue(KEY, WALK, **ACCOUNT)
    assert read(KEY, token, **ACCOUNT) == WALK
    # opaque: no id of the account in it
    assert b"denco" not in base64.urlsafe_b64decode(token + "==")


@pytest.mark.parametrize(
    "account",
    [
        {"program_id": "stomatorg", "customer_id": "c-1"},
        {"program_id": "denco", "customer_id": "c-2"},
        # the length prefixes keep ("denco", "c-1") apart from ("denc", "oc-1")
        {"program_id": "denc", "customer_id": "oc-1"},
    ],
)
def test_another_accounts_token_is_invalid(account: dict[str, str]) -> None:
    fails(issue(KEY, WALK, **ACCOUNT), **account)


def test_every_changed_byte_is_noticed() -> None:
    raw = bytearray(base64.urlsafe_b64decode(issue(KEY, WALK, **ACCOUNT) + "=="))
    for index in range(len(raw)):
        changed = bytearray(raw)
        changed[index] ^= 0x01
        fails(base64.urlsafe_b64encode(bytes(changed)).decode())


@pytest.mark.parametrize("token", ["x", "!!!", "AAAA", "a" * 200, "MTIzOjQ1Ng=="])
def test_garbage_and_the_old_unsigned_tokens_are_invalid(token: str) -> None:
    fails(token)  # "MTIzOjQ1Ng==" is "123:456", the unsigned token of before


def test_another_key_does_not_accept_it() -> None:
    fails(issue(KEY, WALK, **ACCOUNT), key=OTHER_KEY)
