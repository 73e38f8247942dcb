"""Failed calls as exceptions carrying the service's `ErrorInfo`, `BadRequest` and
`LocalizedMessage`.

The service puts a `google.rpc.Status` in the `grpc-status-details-bin`
trailer: an `ErrorInfo` (domain "loyalty", `reason` one of
`loyalty.v1.ErrorReason` without its prefix, `metadata` with the facts), for
bad input a `BadRequest` naming each offending field, and a `LocalizedMessage`:
one sentence for the shopper in the call's language (`localized_message`,
`locale`). Every error the
clients raise is a `LoyaltyError`; the subclass says which status code it was.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One offending field of a bad request, e.g. `cart.lines[0].quantity`."""

    field: str
    description: str


class LoyaltyError(Exception):
    """A call that failed: its status code, message and the service's error details."""

    def __init__(
        self,
        *,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        localized_message: str = "",
        locale: str = "",
    ) -> None:
        self.code = code
        self.localized_message = localized_message  # for the shopper, in `locale`
        self.locale = locale
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = field_violations
        super().__init__(self.summary())

    def summary(self) -> str:
        """`CODE REASON: message`, as the CLI prints it."""
        head = self.code.name + (f" {self.reason}" if self.reason else "")
        return f"{head}: {self.message}"


class InvalidArgumentError(LoyaltyError):
    """INVALID_ARGUMENT: bad input; `field_violations` names each offending field."""


class NotFoundError(LoyaltyError):
    """NOT_FOUND: unknown program or order."""


class AlreadyExistsError(LoyaltyError):
    """ALREADY_EXISTS: a request_id reused for another request, an order already redeemed."""


class FailedPreconditionError(LoyaltyError):
    """FAILED_PRECONDITION: the request is well-formed but the rules refuse it."""


class PermissionDeniedError(LoyaltyError):
    """PERMISSION_DENIED: e.g. `as_of` on a server without clock override."""


class UnauthenticatedError(LoyaltyError):
    """UNAUTHENTICATED: a missing or unknown bearer token."""


class AbortedError(LoyaltyError):
    """ABORTED: contention the service could not resolve; safe to retry with the same request_id."""


class UnavailableError(LoyaltyError):
    """UNAVAILABLE after the client's retries: no server, or its database is away."""


class DeadlineExceededError(LoyaltyError):
    """DEADLINE_EXCEEDED: no answer within the call's deadline."""


_BY_CODE: dict[grpc.StatusCode, type[LoyaltyError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def error_from_status(
    *,
    code: grpc.StatusCode,
    message: str,
    trailing_metadata: Iterable[tuple[str, str | bytes]] | None,
) -> LoyaltyError:
    """The exception for a failed call, with the details found in its trailers."""
    info = error_details_pb2.ErrorInfo()
    localized = error_details_pb2.LocalizedMessage()
    violations: list[FieldViolation] = []
    status = _status_details(trailing_metadata)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(field=v.field, description=v.description)
                for v in bad_request.field_violations
            )
        elif detail.Is(error_details_pb2.LocalizedMessage.DESCRIPTOR):
            detail.Unpack(localized)
    return _BY_CODE.get(code, LoyaltyError)(
        code=code,
        message=status.message if status is not None and status.message else message,
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
        field_violations=tuple(violations),
        localized_message=localized.message,
        locale=localized.locale,
    )


def decode_rpc_error(error: grpc.RpcError) -> LoyaltyError:
    """The exception for a `grpc.RpcError` (sync) or `grpc.aio.AioRpcError`."""
    call: grpc.Call = error  # type: ignore[assignment]  # raised RpcErrors are also Calls
    return error_from_status(
        code=call.code(), message=call.details() or "", trailing_metadata=call.trailing_metadata()
    )


def _status_details(
    trailing_metadata: Iterable[tuple[str, str | bytes]] | None,
) -> status_pb2.Status | None:
    for key, value in trailing_metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None
