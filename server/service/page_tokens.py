"""ListLedgerEntries page tokens (rules.md §7): opaque, bound to a program and customer, signed.

A walk is a snapshot: the first page fixes the highest entry id of the account and the
instant it reads up to, and every later page reads within those, after the last entry
delivered in (effective_at, entry_id) order. An account's entries are written under its
row lock, so an entry committed after the first page was read has a higher id than any
it saw: it is left to the next walk, even when its effective_at is earlier.

The token is that walk and its position, with an HMAC-SHA256 (the service's key, kept in
the database) over it and the program and customer: a token altered, forged or sent for
another account is INVALID_ARGUMENT.
"""

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pricing.errors import InvalidArgument, Violation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_VERSION = 1
# version, highest entry id, read-up-to instant, last (effective_at, entry_id) delivered
_LAYOUT = struct.Struct(">Bqqqq")
_MAC_BYTES = 16


@dataclass(frozen=True)
class Walk:
    """A walk over an account's ledger, and where its next page starts."""

    highest_entry_id: int
    up_to: datetime
    after_effective_at: datetime
    after_entry_id: int


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _mac(key: bytes, payload: bytes, *, program_id: str, customer_id: str) -> bytes:
    message = bytearray(payload)
    for text in (program_id, customer_id):  # length-prefixed: no two accounts sign alike
        data = text.encode()
        message += struct.pack(">I", len(data)) + data
    return hmac.new(key, bytes(message), hashlib.sha256).digest()[:_MAC_BYTES]


def issue(key: bytes, walk: Walk, *, program_id: str, customer_id: str) -> str:
    payload = _LAYOUT.pack(
        _VERSION,
        walk.highest_entry_id,
        _micros(walk.up_to),
        _micros(walk.after_effective_at),
        walk.after_entry_id,
    )
    mac = _mac(key, payload, program_id=program_id, customer_id=customer_id)
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def read(key: bytes, token: str, *, program_id: str, customer_id: str) -> Walk:
    """The walk a token this service issued for this account continues; else bad input."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
    expected = _mac(key, payload, program_id=program_id, customer_id=customer_id)
    if len(raw) != _LAYOUT.size + _MAC_BYTES or not hmac.compare_digest(mac, expected):
        problem = "not a token this service issued for this program and customer"
        raise InvalidArgument([Violation("page_token", problem)])
    version, highest, up_to, after_at, after_id = _LAYOUT.unpack(payload)
    if version != _VERSION:
        raise InvalidArgument([Violation("page_token", "a token of another version")])
    return Walk(
        highest_entry_id=highest,
        up_to=_EPOCH + timedelta(microseconds=up_to),
        after_effective_at=_EPOCH + timedelta(microseconds=after_at),
        after_entry_id=after_id,
    )
