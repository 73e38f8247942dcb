"""TLS and mutual TLS by configuration, with certificates made for the test by openssl.

Two servers: one with --tls-cert/--tls-key, one also with --tls-client-ca (mutual TLS); both
with tokens, which TLS does not replace. Clients that do not trust the server's CA, speak
plaintext, or (mutual TLS) bring no certificate or one from another CA never get a call in.
"""

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from loyalty.client import LoyaltyClient, TlsConfig, UnauthenticatedError
from loyalty.v1 import account_service_pb2 as a
from loyalty.v1 import account_service_pb2_grpc
from tests.e2e.builders import T0, new_id
from tests.support.certificates import Issued, authority, issue
from tests.support.server import ServerProcess

ADMIN = secrets.token_urlsafe(32)
TIMEOUT = 5


@dataclass(frozen=True)
class Pki:
    server_ca: Issued
    server: Issued
    client_ca: Issued
    client: Issued
    stranger_ca: Issued  # trusted by no one
    stranger: Issued  # a client certificate from the stranger CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    server_ca, client_ca, stranger_ca = (authority(d, n) for n in ("server-ca", "client-ca", "x"))
    return Pki(
        server_ca=server_ca,
        server=issue(server_ca, d, "server", usage="serverAuth"),
        client_ca=client_ca,
        client=issue(client_ca, d, "client", usage="clientAuth"),
        stranger_ca=stranger_ca,
        stranger=issue(stranger_ca, d, "stranger", usage="clientAuth"),
    )


def tls_server(pki: Pki, directory: Path, *, mutual: bool) -> ServerProcess:
    args = ("--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key))
    client_cert, client_key = pki.client.pem() if mutual else (None, None)
    if mutual:
        args += ("--tls-client-ca", str(pki.client_ca.cert))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.server_ca.cert.read_bytes(),
        private_key=client_key,
        certificate_chain=client_cert,
    )
    return ServerProcess(
        f"sqlite:///{directory / 'loyalty.sqlite3'}",
        log_path=directory / "server.log",
        extra_args=args,
        env={"LOYALTY_TOKENS": f"{ADMIN}=admin"},
        credentials=credentials,
    )


@pytest.fixture(scope="module")
def tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = tls_server(pki, tmp_path_factory.mktemp("tls"), mutual=False).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def mtls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = tls_server(pki, tmp_path_factory.mktemp("mtls"), mutual=True).start()
    yield process
    process.stop()


def grant(client: LoyaltyClient) -> int:
    response = client.grant_points(
        program_id="stomatorg", customer_id=new_id("c"), points=7, source="action", as_of=T0
    )
    return response.balance_after


def refused_handshake(address: str, credentials: grpc.ChannelCredentials | None) -> None:
    """A call over a channel whose handshake the server refuses: UNAVAILABLE, nothing runs."""
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(address, credentials)
    )
    with channel:
        stub = account_service_pb2_grpc.AccountServiceStub(channel)
        request = a.GetAccountRequest(program_id="stomatorg", customer_id="c")
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetAccount(
                request, timeout=TIMEOUT, metadata=(("authorization", f"Bearer {ADMIN}"),)
            )
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_tls_carries_the_token_as_call_credentials(tls: ServerProcess, pki: Pki) -> None:
    trust = TlsConfig(root_certificates=pki.server_ca.cert.read_bytes())
    with LoyaltyClient(tls.address, timeout=TIMEOUT, token=ADMIN, tls=trust) as client:
        assert grant(client) == 7
    with (
        LoyaltyClient(tls.address, timeout=TIMEOUT, tls=trust) as anonymous,
        pytest.raises(UnauthenticatedError),
    ):
        grant(anonymous)  # TLS authenticates the server, not the caller


def test_tls_refuses_plaintext_and_clients_that_do_not_trust_its_ca(
    tls: ServerProcess, pki: Pki
) -> None:
    refused_handshake(tls.address, None)
    stranger = grpc.ssl_channel_credentials(root_certificates=pki.stranger_ca.cert.read_bytes())
    refused_handshake(tls.address, stranger)


def test_mutual_tls_with_a_client_certificate(mtls: ServerProcess, pki: Pki) -> None:
    mutual = TlsConfig.from_files(
        root_certificates=pki.server_ca.cert,
        client_certificate=pki.client.cert,
        client_key=pki.client.key,
    )
    with LoyaltyClient(mtls.address, timeout=TIMEOUT, token=ADMIN, tls=mutual) as client:
        assert grant(client) == 7


def test_mutual_tls_refuses_clients_without_a_certificate_from_its_ca(
    mtls: ServerProcess, pki: Pki
) -> None:
    roots = pki.server_ca.cert.read_bytes()
    refused_handshake(mtls.address, grpc.ssl_channel_credentials(root_certificates=roots))
    key, chain = pki.stranger.key.read_bytes(), pki.stranger.cert.read_bytes()
    stranger = grpc.ssl_channel_credentials(roots, private_key=key, certificate_chain=chain)
    refused_handshake(mtls.address, stranger)
    refused_handshake(mtls.address, None)
    assert "mutual TLS, 1 tokens" in mtls.log_path.read_text()
