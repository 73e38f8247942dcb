"""How the clients connect: target, TLS, bearer token, deadline and the retry policy."""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0  # seconds; every call gets a deadline
DEFAULT_MAX_ATTEMPTS = 4  # the first attempt included
SERVICES = ("loyalty.v1.RedemptionService", "loyalty.v1.AccountService")
# Trailing metadata the service adds to an answer served from its idempotency record.
REPLAYED_KEY = "loyalty-replayed"


@dataclass
class CallInfo:
    """What a call's trailing metadata said. Pass one as `info=` to a mutation to learn it.

    `replayed` is True when the service answered from its idempotency record: the
    request id was seen before, the answer is the first call's, this call changed nothing.
    """

    replayed: bool = False
    trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()

    def record(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> None:
        pairs = tuple((key, value) for key, value in metadata or ())
        self.trailing_metadata = pairs
        self.replayed = (REPLAYED_KEY, "true") in pairs


@dataclass(frozen=True)
class TlsConfig:
    """TLS for the channel: PEM bytes; no root certificates means the system's roots."""

    root_certificates: bytes | None = None
    client_certificate: bytes | None = None  # with client_key: mutual TLS
    client_key: bytes | None = None
    server_name: str | None = None  # overrides the name checked against the certificate

    @classmethod
    def from_files(
        cls,
        *,
        root_certificates: str | Path | None = None,
        client_certificate: str | Path | None = None,
        client_key: str | Path | None = None,
        server_name: str | None = None,
    ) -> "TlsConfig":
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        if (client_certificate is None) != (client_key is None):
            raise ValueError("mutual TLS needs both a client certificate and its key")
        return cls(
            root_certificates=read(root_certificates),
            client_certificate=read(client_certificate),
            client_key=read(client_key),
            server_name=server_name,
        )


@dataclass(frozen=True)
class ChannelConfig:
    """Everything both clients need to open a channel and make calls."""

    target: str = DEFAULT_TARGET
    timeout: float = DEFAULT_TIMEOUT
    token: str | None = None
    tls: TlsConfig | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    extra_options: tuple[tuple[str, str | int], ...] = field(default=())
    # Sent as `accept-language` (e.g. "ru", "en;q=0.5, ru"): the language of explanations,
    # names and error messages; None: the program's default language.
    language: str | None = None

    def options(self) -> list[tuple[str, str | int]]:
        options: list[tuple[str, str | int]] = [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", service_config(max_attempts=self.max_attempts)),
        ]
        if self.tls is not None and self.tls.server_name:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return options + list(self.extra_options)

    def credentials(self) -> grpc.ChannelCredentials | None:
        """Channel credentials for TLS (with the token as call credentials); None: plaintext."""
        if self.tls is None:
            return None
        channel = grpc.ssl_channel_credentials(
            root_certificates=self.tls.root_certificates,
            private_key=self.tls.client_key,
            certificate_chain=self.tls.client_certificate,
        )
        if self.token is None:
            return channel
        return grpc.composite_channel_credentials(
            channel, grpc.access_token_call_credentials(self.token)
        )

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata sent with every call: the language asked for, and the bearer token on a
        plaintext channel.

        gRPC only sends call credentials over TLS; on plaintext (loopback,
        development) the token goes as the same `authorization` header.
        """
        metadata: tuple[tuple[str, str], ...] = ()
        if self.language:
            metadata += (("accept-language", self.language),)
        if self.token is None or self.tls is not None:
            return metadata
        return (*metadata, ("authorization", f"Bearer {self.token}"))


def service_config(*, max_attempts: int) -> str:
    """The channel's service config: retry UNAVAILABLE, and nothing else.

    UNAVAILABLE means the call did not reach the service or its database was
    away. Retrying is safe even for mutations: each carries a request_id fixed
    before the first attempt, so an attempt that follows a success gets the
    first answer back instead of acting twice. Other codes are answers.
    """
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": name} for name in SERVICES],
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )
