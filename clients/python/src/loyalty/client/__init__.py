"""Typed clients for the loyalty service: `LoyaltyClient` (blocking) and `AsyncLoyaltyClient`.

Every call has a deadline (10 s unless told otherwise); UNAVAILABLE is retried
by the channel (its service config), which is safe because every mutation
carries a request_id fixed before the first attempt; failures raise a
`LoyaltyError` subclass with the service's reason, metadata and field
violations. A mutation given `info=CallInfo()` says there whether its answer was a replay.
The generated messages and stubs are in `loyalty.v1` (the loyalty-stubs distribution).
"""

from loyalty.client.aio import AsyncLoyaltyClient
from loyalty.client.channel import CallInfo, ChannelConfig, TlsConfig, service_config
from loyalty.client.errors import (
    AbortedError,
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    LoyaltyError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    decode_rpc_error,
)
from loyalty.client.requests import new_request_id, parse_cart
from loyalty.client.sync import LoyaltyClient

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "AsyncLoyaltyClient",
    "CallInfo",
    "ChannelConfig",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "LoyaltyClient",
    "LoyaltyError",
    "NotFoundError",
    "PermissionDeniedError",
    "TlsConfig",
    "UnauthenticatedError",
    "UnavailableError",
    "decode_rpc_error",
    "new_request_id",
    "parse_cart",
    "service_config",
]
