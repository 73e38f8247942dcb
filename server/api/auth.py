"""Bearer tokens and roles (docs/rules.md §9): who may call which RPC.

Tokens come from a file (`--tokens FILE`, TOML or JSON: token → role) and from the
environment (`LOYALTY_TOKENS="TOKEN=ROLE,TOKEN=ROLE"`). A token may be written as
`sha256:` and its SHA-256 in hex, so the configuration need not hold the secret itself;
either way only digests are kept in memory, and a presented token is hashed and compared
with every digest in constant time. No message here ever contains a token.
"""

import enum
import hashlib
import hmac
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loyalty.v1 import account_service_pb2, redemption_service_pb2, reporting_service_pb2
from server.api.refusals import RoleNotAllowed, TokenInvalid, TokenMissing


class Role(enum.StrEnum):
    CHECKOUT = "checkout"
    PAYMENTS = "payments"
    FINANCE = "finance"
    ADMIN = "admin"


def _method(service: str, name: str) -> str:
    return f"/loyalty.v1.{service}/{name}"


_READS = {
    _method("RedemptionService", "GetRedemption"),
    _method("AccountService", "GetAccount"),
    _method("AccountService", "ListLedgerEntries"),
}
_ALL = {
    _method(service.name, method.name)
    for module in (redemption_service_pb2, account_service_pb2, reporting_service_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
}
# Full method names each role may call; admin may call all of them.
ALLOWED: Mapping[Role, frozenset[str]] = {
    Role.CHECKOUT: frozenset(
        {
            _method("RedemptionService", "QuoteRedemption"),
            _method("RedemptionService", "ApplyRedemption"),
            *_READS,
        }
    ),
    Role.PAYMENTS: frozenset(
        {
            _method("RedemptionService", "CaptureRedemption"),
            _method("RedemptionService", "ReverseRedemption"),
            *_READS,
        }
    ),
    # docs/rules.md §9: the finance team reads the reports and nothing else.
    Role.FINANCE: frozenset(
        {
            _method("ReportingService", "GetLiability"),
            _method("ReportingService", "GetLiabilityRollForward"),
        }
    ),
    Role.ADMIN: frozenset(_ALL),
}

# RFC 6750's b64token: what fits in `authorization: Bearer …` as is.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 4096
_BEARER = re.compile(r"bearer +(\S+)", re.IGNORECASE)


class TokensError(ValueError):
    """A token configuration the server refuses to start with (never quoting a token)."""


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Tokens:
    """The digests of the configured tokens and their roles."""

    entries: tuple[tuple[bytes, Role], ...] = ()
    plain: int = 0  # how many were configured in plain text rather than as digests

    def __bool__(self) -> bool:
        return bool(self.entries)

    def role_of(self, token: str) -> Role | None:
        """The token's role, comparing its digest with every entry (no early exit)."""
        presented = digest(token)
        found = None
        for known, role in self.entries:
            if hmac.compare_digest(known, presented):
                found = role
        return found

    def authorize(self, method: str, metadata: Sequence[tuple[str, str | bytes]]) -> Role:
        """The caller's role if it may call `method`; otherwise the refusal as an error."""
        values = [v for k, v in metadata if k == "authorization"]
        if not values:
            raise TokenMissing()
        value = values[0] if len(values) == 1 else None
        match = _BEARER.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise TokenInvalid()
        role = self.role_of(match.group(1))
        if role is None:
            raise TokenInvalid()
        if method not in ALLOWED[role]:
            raise RoleNotAllowed(role=role.value, method=method)
        return role


def _entry(key: object, value: object, *, where: str) -> tuple[bytes, Role, bool]:
    roles = ", ".join(r.value for r in Role)
    if not isinstance(value, str) or value not in {r.value for r in Role}:
        raise TokensError(f"{where}: the role must be one of {roles}, got {value!r}")
    if not isinstance(key, str):
        raise TokensError(f"{where}: the token must be a string")
    hashed = _DIGEST.fullmatch(key)
    if hashed:
        return bytes.fromhex(hashed.group(1)), Role(value), False
    if key.startswith("sha256:"):
        raise TokensError(f"{where}: a sha256: token must be 64 lowercase hex digits")
    if not _TOKEN.fullmatch(key):
        raise TokensError(f"{where}: the token has characters a bearer token cannot carry")
    if not MIN_TOKEN_LENGTH <= len(key) <= MAX_TOKEN_LENGTH:
        raise TokensError(
            f"{where}: a token must be {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} characters"
        )
    return digest(key), Role(value), True


def _table(
    pairs: Iterable[tuple[object, object]], *, source: str
) -> list[tuple[bytes, Role, bool]]:
    return [_entry(k, v, where=f"{source}: entry {i}") for i, (k, v) in enumerate(pairs, 1)]


def read_file(path: Path) -> list[tuple[bytes, Role, bool]]:
    """`token = "role"` lines in TOML, or a JSON object {token: role}."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TokensError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        # Say only where: a parser's message might quote the text around it, a token.
        line = re.search(r"line (\d+)", str(exc))
        at = f" at line {line.group(1)}" if line else ""
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise TokensError(f"{path}: not valid {kind}{at}") from None
    if not isinstance(data, dict):
        raise TokensError(f"{path}: must map each token to a role")
    return _table(data.items(), source=str(path))


def parse_env(text: str) -> list[tuple[bytes, Role, bool]]:
    """`TOKEN=ROLE` entries separated by commas (a token may itself end in '=')."""
    pairs = []
    for i, item in enumerate(filter(None, (part.strip() for part in text.split(","))), 1):
        token, sep, role = item.rpartition("=")
        if not sep:
            raise TokensError(f"LOYALTY_TOKENS: entry {i}: write TOKEN=ROLE")
        pairs.append((token, role))
    return _table(pairs, source="LOYALTY_TOKENS")


def load_tokens(*, path: Path | None, env_value: str) -> Tokens:
    entries = (read_file(path) if path is not None else []) + parse_env(env_value)
    digests = [d for d, _, _ in entries]
    if len(set(digests)) != len(digests):
        raise TokensError("the same token is configured twice")
    return Tokens(
        entries=tuple((d, role) for d, role, _ in entries),
        plain=sum(1 for _, _, plain in entries if plain),
    )
