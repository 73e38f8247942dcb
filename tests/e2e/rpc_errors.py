"""Decoding a failed call: its status code, `google.rpc.ErrorInfo` and `google.rpc.BadRequest`."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class Failure:
    code: grpc.StatusCode
    domain: str
    reason: str
    metadata: dict[str, str]
    fields: list[str]  # BadRequest field paths, in the order the server named them
    message: str
    localized: tuple[str, str]  # LocalizedMessage (locale, message): every error has one


def failure_of(
    method: Callable[..., Any], request: Any, *, metadata: tuple[tuple[str, str], ...] = ()
) -> Failure:
    """Call `method(request)`, which must fail, and decode the failure."""
    try:
        method(request, timeout=10, **({"metadata": metadata} if metadata else {}))
    except grpc.RpcError as err:
        return decode(err)
    raise AssertionError(f"{request.__class__.__name__} succeeded; an error was expected")


def decode(err: grpc.RpcError) -> Failure:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, f"no google.rpc.Status in {err!r}"
    infos, bad, localized = [], [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            bad.append(request)
        elif detail.Is(error_details_pb2.LocalizedMessage.DESCRIPTOR):
            message = error_details_pb2.LocalizedMessage()
            detail.Unpack(message)
            localized.append((message.locale, message.message))
    assert len(infos) == 1, f"expected one ErrorInfo, got {len(infos)}: {status}"
    assert len(bad) <= 1, f"expected at most one BadRequest: {status}"
    assert len(localized) == 1, f"expected one LocalizedMessage (docs/rules.md §10): {status}"
    return Failure(
        code=err.code(),  # type: ignore[attr-defined]
        domain=infos[0].domain,
        reason=infos[0].reason,
        metadata=dict(infos[0].metadata),
        fields=[v.field for v in bad[0].field_violations] if bad else [],
        message=status.message,
        localized=localized[0],
    )


def expect_error(
    method: Callable[..., Any],
    request: Any,
    code: grpc.StatusCode,
    reason: str,
    *,
    fields: list[str] | None = None,
    metadata: dict[str, str] | None = None,
) -> Failure:
    """Assert the call fails with `code` and `reason` (domain "loyalty").

    INVALID_ARGUMENT must come with a BadRequest naming exactly `fields`
    (compared as sorted lists, so a field named twice fails); other codes
    must come without one. `metadata`, when given, must equal ErrorInfo's.
    """
    failure = failure_of(method, request)
    assert (failure.code, failure.reason) == (code, reason), failure
    assert failure.domain == "loyalty", failure
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        assert fields is not None, "say which fields a BadRequest must name"
        assert sorted(failure.fields) == sorted(fields), failure
    else:
        assert fields is None and failure.fields == [], failure
    if metadata is not None:
        assert failure.metadata == metadata, failure
    return failure
