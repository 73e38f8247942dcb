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
from server.service.errors import ClockOverrideDisabled
from server.store.db import CallDeadlineExceeded, ConcurrentUpdate, DatabaseUnavailable

log = logging.getLogger(__name__)

DOMAIN = "loyalty"

# Error class → (status, reason). Subclasses match before their bases.
TABLE: dict[type[Exception], tuple[grpc.StatusCode, str]] = {
    domain.UnknownSource: (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_SOURCE"),
    domain.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"),
    domain.ProgramNotFound: (grpc.StatusCode.NOT_FOUND, "PROGRAM_NOT_FOUND"),
    domain.OrderNotFound: (grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND"),
    domain.IdempotencyKeyReused: (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"),
    domain.OrderAlreadyRedeemed: (grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_REDEEMED"),
    domain.OrderAlreadyAccrued: (grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_ACCRUED"),
    domain.CurrencyMismatch: (grpc.StatusCode.FAILED_PRECONDITION, "CURRENCY_MISMATCH"),
    domain.PromoConflict: (grpc.StatusCode.FAILED_PRECONDITION, "PROMO_CONFLICT"),
    domain.AllOrNothing: (grpc.StatusCode.FAILED_PRECONDITION, "ALL_OR_NOTHING"),
    domain.ExceedsMaximum: (grpc.StatusCode.FAILED_PRECONDITION, "EXCEEDS_MAXIMUM"),
    domain.ExceedsRemaining: (grpc.StatusCode.FAILED_PRECONDITION, "EXCEEDS_REMAINING"),
    domain.HoldExpired: (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_EXPIRED"),
    domain.HoldReleased: (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_RELEASED"),
    ClockOverrideDisabled: (grpc.StatusCode.PERMISSION_DENIED, "CLOCK_OVERRIDE_DISABLED"),
    DatabaseUnavailable: (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE"),
    ConcurrentUpdate: (grpc.StatusCode.ABORTED, "CONCURRENT_UPDATE"),
    # The account stayed locked until the caller's deadline (which has passed, so the
    # caller mostly sees its own DEADLINE_EXCEEDED); nothing was written.
    CallDeadlineExceeded: (grpc.StatusCode.DEADLINE_EXCEEDED, "CONCURRENT_UPDATE"),
}

_PUBLIC_MESSAGES = {
    DatabaseUnavailable: "the database cannot be reached; retry with the same request_id",
    ConcurrentUpdate: "the account was busy; retry with the same request_id",
    CallDeadlineExceeded: "the account was busy past the deadline; retry with the request_id",
}


def to_status(exc: Exception) -> grpc.Status:
    """The status a caller sees for `exc` (never a trace, never SQL)."""
    entry = next((TABLE[kind] for kind in TABLE if isinstance(exc, kind)), None)
    if entry is None:
        log.error("unexpected error", exc_info=exc)
        return rpc_status.to_status(
            status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
        )
    code, reason = entry
    message = _PUBLIC_MESSAGES.get(type(exc)) or str(exc)
    metadata = exc.metadata() if isinstance(exc, domain.DomainError) else {}
    if isinstance(exc, domain.InvalidArgument):
        reason = exc.reason
    details = [error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)]
    if isinstance(exc, domain.InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in exc.violations
                ]
            )
        )
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=packed)
    )
