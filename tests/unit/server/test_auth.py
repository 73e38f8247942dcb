"""Tokens, roles and the loopback rule, without a server."""

import hashlib
from pathlib import Path

import pytest

from server.api.auth import ALLOWED, Role, TokensError, load_tokens
from server.api.refusals import RoleNotAllowed, TokenInvalid, TokenMissing
from server.config import Config, exposure_problem, is_loopback, parse

CHECKOUT = "checkout-0123456789abcdef"
PAYMENTS = "payments+/0123456789abc=="  # b64token characters, '=' padding included
ADMIN = "admin-0123456789abcdefgh"
QUOTE = "/loyalty.v1.RedemptionService/QuoteRedemption"
GRANT = "/loyalty.v1.AccountService/GrantPoints"


def hexdigest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_a_toml_file_of_digests_and_plain_tokens_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(f'"sha256:{hexdigest(CHECKOUT)}" = "checkout"\n"{ADMIN}" = "admin"\n')
    tokens = load_tokens(path=path, env_value=f" {PAYMENTS}=payments , ")
    assert (len(tokens.entries), tokens.plain) == (3, 2)
    assert tokens.role_of(CHECKOUT) is Role.CHECKOUT
    assert tokens.role_of(PAYMENTS) is Role.PAYMENTS
    assert tokens.role_of(ADMIN) is Role.ADMIN
    assert tokens.role_of(f"sha256:{hexdigest(CHECKOUT)}") is None  # the digest is no token
    assert tokens.role_of(CHECKOUT.upper()) is None
    assert tokens.role_of("") is None


def test_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(f'{{"{ADMIN}": "admin", "sha256:{hexdigest(CHECKOUT)}": "checkout"}}')
    tokens = load_tokens(path=path, env_value="")
    assert (tokens.role_of(ADMIN), tokens.role_of(CHECKOUT)) == (Role.ADMIN, Role.CHECKOUT)
    assert tokens.plain == 1


def test_no_configuration_means_no_tokens() -> None:
    assert not load_tokens(path=None, env_value="")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            f'{{"{ADMIN}": 1}}',
            "entry 1: the role must be one of checkout, payments, finance, admin, got 1",
        ),
        ('["a"]', "must map each token to a role"),
        ("{", "not valid JSON at line 1"),
    ],
)
def test_bad_json_files_say_where_not_what(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(text)
    with pytest.raises(TokensError) as refused:
        load_tokens(path=path, env_value="")
    assert str(refused.value) == f"{path}: {error}"
    assert ADMIN not in str(refused.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TokensError, match=r"missing\.toml: cannot read: No such file"):
        load_tokens(path=tmp_path / "missing.toml", env_value="")


def grpc_metadata(*values: str | bytes) -> list[tuple[str, str | bytes]]:
    return [("user-agent", "test"), *(("authorization", v) for v in values)]


def test_authorize_names_the_role_or_the_refusal() -> None:
    tokens = load_tokens(path=None, env_value=f"{CHECKOUT}=checkout")
    assert tokens.authorize(QUOTE, grpc_metadata(f"Bearer {CHECKOUT}")) is Role.CHECKOUT
    assert tokens.authorize(QUOTE, grpc_metadata(f"BEARER   {CHECKOUT}")) is Role.CHECKOUT
    with pytest.raises(TokenMissing):
        tokens.authorize(QUOTE, grpc_metadata())
    for broken in (
        grpc_metadata(f"Bearer {ADMIN}"),
        grpc_metadata(f"Bearer {CHECKOUT} extra"),
        grpc_metadata(f"Bearer {CHECKOUT}".encode()),
        grpc_metadata(f"Bearer {CHECKOUT}", f"Bearer {CHECKOUT}"),
    ):
        with pytest.raises(TokenInvalid):
            tokens.authorize(QUOTE, broken)
    with pytest.raises(RoleNotAllowed) as denied:
        tokens.authorize(GRANT, grpc_metadata(f"Bearer {CHECKOUT}"))
    assert denied.value.metadata() == {"role": "checkout", "method": GRANT}


def test_admin_may_call_every_rpc_and_the_others_a_part() -> None:
    # 5 RedemptionService + 4 AccountService + 2 ReportingService methods.
    assert len(ALLOWED[Role.ADMIN]) == 11
    reports = {
        "/loyalty.v1.ReportingService/GetLiability",
        "/loyalty.v1.ReportingService/GetLiabilityRollForward",
    }
    assert ALLOWED[Role.CHECKOUT] | ALLOWED[Role.PAYMENTS] == ALLOWED[Role.ADMIN] - {
        GRANT,
        "/loyalty.v1.AccountService/AccrueOrder",
        *reports,
    }
    assert ALLOWED[Role.FINANCE] == reports  # docs/rules.md §9: the reports and nothing else


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.3.4.5:1", True),
        ("[::1]:50051", True),
        ("localhost:50051", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("10.0.0.7:50051", False),
        ("loyalty.internal:50051", False),
        ("[::ffff:127.0.0.1]:1", False),  # an IPv4-mapped address: not judged loopback by ipaddress
    ],
)
def test_loopback(listen: str, loopback: bool) -> None:
    assert is_loopback(listen) is loopback


def test_beyond_loopback_needs_tokens_or_insecure() -> None:
    public = Config(listen="0.0.0.0:50051")
    assert "refusing to serve on 0.0.0.0:50051 without tokens" in str(
        exposure_problem(public, has_tokens=False)
    )
    assert exposure_problem(public, has_tokens=True) is None
    assert exposure_problem(Config(listen="0.0.0.0:1", insecure=True), has_tokens=False) is None
    assert exposure_problem(Config(), has_tokens=False) is None


def test_the_options_and_their_environment_twins() -> None:
    env = {
        "LOYALTY_TOKENS": f"{ADMIN}=admin",
        "LOYALTY_TOKENS_FILE": "/etc/loyalty/tokens.toml",
        "LOYALTY_INSECURE": "1",
        "LOYALTY_TLS_CERT": "/c.pem",
        "LOYALTY_TLS_KEY": "/k.pem",
        "LOYALTY_TLS_CLIENT_CA": "/ca.pem",
        "LOYALTY_MAX_MESSAGE_BYTES": "1000",
        "LOYALTY_MAX_CONCURRENT_RPCS": "7",
    }
    _, config = parse([], env=env)
    assert config.tokens_file == Path("/etc/loyalty/tokens.toml") and config.insecure
    assert (config.tls_cert, config.tls_key, config.tls_client_ca) == (
        Path("/c.pem"),
        Path("/k.pem"),
        Path("/ca.pem"),
    )
    assert (config.max_message_bytes, config.max_concurrent_rpcs) == (1000, 7)
    assert config.tokens_env == f"{ADMIN}=admin"
    assert ADMIN not in repr(config)  # a logged configuration shows no token
    _, defaults = parse([], env={})
    assert (defaults.max_message_bytes, defaults.max_concurrent_rpcs) == (4 * 1024 * 1024, 1000)
    assert (defaults.tokens_file, defaults.tls_cert, defaults.insecure) == (None, None, False)
