"""The one error table: its reasons are the API's, and its statuses fit in a trailer."""

from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from loyalty.v1 import errors_pb2
from loyalty.v1 import redemption_service_pb2 as pb
from pricing.errors import InvalidArgument, ProgramNotFound, Violation
from server.api.errors import TABLE, clip, clip_middle, to_status
from server.api.gate import Undecodable, tolerant
from server.service.errors import MalformedRequest
from server.texts.texts import Languages

PLAIN = Languages({}).texts(None, "")  # English: no program

# gRPC clients refuse trailers past 8 KiB by default; the status must stay well under.
TRAILER_BUDGET = 6 * 1024


def details(status: object) -> status_pb2.Status:
    for key, value in status.trailing_metadata:  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no details")


def trailer_bytes(status: object) -> int:
    """What the status costs on the wire: the message percent-encoded, the details base64."""
    message = status.details.encode()  # type: ignore[attr-defined]
    encoded = sum(1 if 0x20 <= b < 0x7F and b != ord("%") else 3 for b in message)
    return encoded + len(details(status).SerializeToString()) * 4 // 3 + 4


def test_every_reason_in_the_table_is_in_the_error_reason_enum() -> None:
    reasons = {name.removeprefix("ERROR_REASON_") for name in errors_pb2.ErrorReason.keys()}  # noqa: SIM118
    assert {reason for _, reason in TABLE.values()} <= reasons
    assert {"TOKEN_MISSING", "TOKEN_INVALID", "ROLE_NOT_ALLOWED", "MALFORMED_REQUEST"} <= reasons


def test_five_thousand_violations_fit_in_a_trailer_first_ones_kept() -> None:
    long_id = "😀" * 256
    violations = [
        Violation(f"cart.lines[{i}].line_id", f"duplicate line_id {long_id!r}") for i in range(5000)
    ]
    status = to_status(InvalidArgument(violations), PLAIN)
    assert trailer_bytes(status) < TRAILER_BUDGET
    decoded = details(status)
    bad = error_details_pb2.BadRequest()
    decoded.details[1].Unpack(bad)
    kept = [v.field for v in bad.field_violations]
    assert kept == [f"cart.lines[{i}].line_id" for i in range(len(kept))] and len(kept) >= 1
    assert status.details.startswith("cart.lines[0].line_id: duplicate line_id '😀")
    assert status.details.endswith("😀' (and 4999 more)")  # the middle goes, the count stays
    assert "😀…😀" in status.details
    assert len(status.details.encode()) <= 400


def test_long_values_in_error_info_are_clipped() -> None:
    status = to_status(ProgramNotFound("😀" * 256), PLAIN)
    assert trailer_bytes(status) < TRAILER_BUDGET
    info = error_details_pb2.ErrorInfo()
    details(status).details[0].Unpack(info)
    assert len(info.metadata["program_id"].encode()) <= 256
    assert info.metadata["program_id"].endswith("😀…")


def test_clip_cuts_on_a_character_boundary() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("😀😀😀", 8) == "😀…"  # 4 bytes of emoji + 3 of the ellipsis fit in 8
    assert clip("ab😀", 5) == "ab…"
    assert (
        clip_middle("a" * 100 + " (and 1 more)", 80) == "a" * 57 + "…" + "a" * 7 + " (and 1 more)"
    )
    assert len(clip_middle("é" * 1000, 400).encode()) <= 400


def test_undecodable_bytes_become_malformed_request() -> None:
    read = tolerant(pb.QuoteRedemptionRequest.FromString)
    assert read(b"\x0a\x03abc").program_id == "abc"
    bad = read(b"\x0a\x01\xff")
    assert isinstance(bad, Undecodable) and bad.message_type == "loyalty.v1.QuoteRedemptionRequest"
    status = rpc_status.to_status(details(to_status(MalformedRequest(bad.message_type), PLAIN)))
    assert status.code.name == "INVALID_ARGUMENT"
