"""TLS and mutual TLS, with the token as call credentials, against an in-process server."""

import subprocess
from pathlib import Path

import grpc
import pytest

from loyalty.client import LoyaltyClient, TlsConfig, UnavailableError
from tests.support.certificates import require_openssl
from tests.unit.client.fake_server import FakeAccounts, serving

GRANT = {"program_id": "stomatorg", "customer_id": "c-1", "points": 5, "source": "loyalty"}


def self_signed(directory: Path, name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for `localhost` and its key (PEM), made with openssl."""
    require_openssl()
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert.read_bytes(), key.read_bytes()


def test_tls_with_a_bearer_token(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "server")
    fake = FakeAccounts()
    credentials = grpc.ssl_server_credentials([(key, cert)])
    with (
        serving(fake, credentials) as target,
        LoyaltyClient(target, token="s3cret", tls=TlsConfig(root_certificates=cert)) as client,
    ):
        assert client.grant_points(**GRANT).balance_after == 5  # type: ignore[arg-type]
    assert fake.received[0].metadata["authorization"] == "Bearer s3cret"


def test_mutual_tls(tmp_path: Path) -> None:
    server_cert, server_key = self_signed(tmp_path, "server")
    client_cert, _ = self_signed(tmp_path, "client")  # written to client.pem / client.key
    fake = FakeAccounts()
    credentials = grpc.ssl_server_credentials(
        [(server_key, server_cert)], root_certificates=client_cert, require_client_auth=True
    )
    with serving(fake, credentials) as target:
        anonymous = TlsConfig(root_certificates=server_cert)
        # Without a client certificate the handshake fails: UNAVAILABLE, after the retries.
        with LoyaltyClient(target, tls=anonymous) as client, pytest.raises(UnavailableError):
            client.grant_points(**GRANT)  # type: ignore[arg-type]
        (tmp_path / "root.pem").write_bytes(server_cert)
        mutual = TlsConfig.from_files(
            root_certificates=tmp_path / "root.pem",
            client_certificate=tmp_path / "client.pem",
            client_key=tmp_path / "client.key",
        )
        with LoyaltyClient(target, tls=mutual) as client:
            assert client.grant_points(**GRANT).balance_after == 5  # type: ignore[arg-type]
