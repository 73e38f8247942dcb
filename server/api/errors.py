"""The one table from errors to a gRPC status, an ErrorInfo reason and a BadRequest.

Nothing else in the code picks status codes. Anything not in the table is a
bug: it is logged with its trace and answered INTERNAL without details.
"""

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from pricing import errors as domain
from pricing.errors import facts
from server.api.refusals import MalformedRequest, RoleNotAllowed, TokenInvalid, TokenMissing
from server.service.errors import (
    CallDeadlineExceeded,
    ClockOverrideDisabled,
    ConcurrentUpdate,
    DatabaseUnavailable,
    IdempotencyKeyReused,
)
from server.texts.explain import error_message
from server.texts.texts import Texts

log = logging.getLogger(__name__)

DOMAIN = "loyalty"

# Error class → (status, reason). Subclasses match before their bases.
TABLE: dict[type[Exception], tuple[grpc.StatusCode, str]] = {
    domain.UnknownSource: (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_SOURCE"),
    domain.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"),
    domain.ProgramNotFound: (grpc.StatusCode.NOT_FOUND, "PROGRAM_NOT_FOUND"),
    domain.OrderNotFound: (grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND"),
    IdempotencyKeyReused: (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"),
    domain.OrderAlreadyRedeemed: (grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_REDEEMED"),
    domain.OrderAlreadyAccrued: (grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_ACCRUED"),
    domain.CurrencyMismatch: (grpc.StatusCode.FAILED_PRECONDITION, "CURRENCY_MISMATCH"),
    domain.PromoConflict: (grpc.StatusCode.FAILED_PRECONDITION, "PROMO_CONFLICT"),
    domain.AllOrNothing: (grpc.StatusCode.FAILED_PRECONDITION, "ALL_OR_NOTHING"),
    domain.ExceedsMaximum: (grpc.StatusCode.FAILED_PRECONDITION, "EXCEEDS_MAXIMUM"),
    domain.ExceedsRemaining: (grpc.StatusCode.FAILED_PRECONDITION, "EXCEEDS_REMAINING"),
    domain.HoldExpired: (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_EXPIRED"),
    domain.HoldReleased: (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_RELEASED"),
    domain.OrderCustomerMismatch: (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_CUSTOMER_MISMATCH"),
    domain.AccrualMismatch: (grpc.StatusCode.FAILED_PRECONDITION, "ACCRUAL_MISMATCH"),
    # Behind the use cases' own state checks (HOLD_EXPIRED, HOLD_RELEASED ...): no call is
    # known to reach it, but if one does, the caller learns which move was refused.
    domain.InvalidTransition: (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION"),
    ClockOverrideDisabled: (grpc.StatusCode.PERMISSION_DENIED, "CLOCK_OVERRIDE_DISABLED"),
    TokenMissing: (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
    TokenInvalid: (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
    RoleNotAllowed: (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"),
    MalformedRequest: (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"),
    DatabaseUnavailable: (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE"),
    ConcurrentUpdate: (grpc.StatusCode.ABORTED, "CONCURRENT_UPDATE"),
    # The account stayed locked until the caller's deadline (which has passed, so the
    # caller mostly sees its own DEADLINE_EXCEEDED); nothing was written. errors.proto
    # documents CONCURRENT_UPDATE with both statuses.
    CallDeadlineExceeded: (grpc.StatusCode.DEADLINE_EXCEEDED, "CONCURRENT_UPDATE"),
}

# The status travels in HTTP/2 trailers, which clients cap (8 KiB by default in gRPC);
# a status past that reaches the caller as RESOURCE_EXHAUSTED with no details at all. These
# bounds keep the worst case (every string at its limit, in 4-byte characters, the message
# percent-encoded once and base64-encoded in the details) near 5 KiB.
MAX_MESSAGE_BYTES = 400
MAX_METADATA_VALUE_BYTES = 256
MAX_BAD_REQUEST_BYTES = 1_500

_PUBLIC_MESSAGES = {
    DatabaseUnavailable: "the database cannot be reached; retry with the same request_id",
    ConcurrentUpdate: "the account was busy; retry with the same request_id",
    CallDeadlineExceeded: "the account was busy past the deadline; retry with the request_id",
}


def to_status(exc: Exception, texts: Texts) -> grpc.Status:
    """The status a caller sees for `exc` (never a trace, never SQL).

    Every status from the table carries a LocalizedMessage in `texts`' language (docs/rules.md §10).
    """
    entry = next((TABLE[kind] for kind in TABLE if isinstance(exc, kind)), None)
    if entry is None:
        log.error("unexpected error", exc_info=exc)
        return rpc_status.to_status(
            status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
        )
    code, reason = entry
    message = clip_middle(_PUBLIC_MESSAGES.get(type(exc)) or str(exc), MAX_MESSAGE_BYTES)
    metadata = {key: clip(value, MAX_METADATA_VALUE_BYTES) for key, value in facts(exc).items()}
    details = [error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)]
    if isinstance(exc, domain.InvalidArgument | domain.AccrualMismatch):
        details.append(bad_request(exc.violations))
    localized = clip_middle(error_message(texts, exc, reason), MAX_MESSAGE_BYTES)
    details.append(error_details_pb2.LocalizedMessage(locale=texts.language, message=localized))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=packed)
    )


def bad_request(violations: list[domain.Violation]) -> error_details_pb2.BadRequest:
    """The violations in order, as many as fit MAX_BAD_REQUEST_BYTES (always the first).

    The status message already says how many there are in all ("… (and 4999 more)").
    """
    request = error_details_pb2.BadRequest()
    for violation in violations:
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=clip(violation.field, MAX_METADATA_VALUE_BYTES),
            description=clip(violation.description, MAX_METADATA_VALUE_BYTES),
        )
        if request.field_violations and (
            request.ByteSize() + entry.ByteSize() + 3 > MAX_BAD_REQUEST_BYTES
        ):
            break
        request.field_violations.append(entry)
    return request


def clip(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, on a character boundary, marked with "…"."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - len("…".encode())].decode(errors="ignore") + "…"


def clip_middle(text: str, max_bytes: int) -> str:
    """`text` in at most `max_bytes` of UTF-8, keeping its end ("… (and 41 more)")."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    tail = encoded[-min(64, max_bytes // 4) :].decode(errors="ignore")
    return clip(text, max_bytes - len(tail.encode())) + tail
