"""The one error table: its reasons are the API's, and its statuses fit in a trailer."""

import importlib
import pkgutil
import re

from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

import pricing
import server
from loyalty.v1 import errors_pb2
from loyalty.v1 import redemption_service_pb2 as pb
from pricing.errors import (
    DomainError,
    InvalidArgument,
    InvalidTransition,
    ProgramNotFound,
    Violation,
    facts,
)
from server.api.errors import TABLE, clip, clip_middle, to_status
from server.api.gate import Undecodable, tolerant
from server.api.refusals import CallRefused, MalformedRequest, RoleNotAllowed
from server.service.errors import IdempotencyKeyReused
from server.store.db import DatabaseUnavailable
from server.texts.texts import Languages
from tests.support.server import ROOT

PLAIN = Languages({}).texts(None, "")  # English: no program

# gRPC clients refuse trailers past 8 KiB by default; the status must stay well under.
TRAILER_BUDGET = 6 * 1024
ERRORS_PROTO = ROOT / "protos" / "loyalty" / "v1" / "errors.proto"


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


def _documented_statuses() -> dict[str, set[str]]:
    """Each ErrorReason value of errors.proto → the statuses its comment says it comes with.

    A value's comment starts "STATUS: …" or "STATUS or STATUS: …".
    """
    documented: dict[str, set[str]] = {}
    comment: list[str] = []
    for line in ERRORS_PROTO.read_text().splitlines():
        line = line.strip()
        if line.startswith("//"):
            comment.append(line.removeprefix("//").strip())
        elif value := re.match(r"ERROR_REASON_(\w+) = \d+;", line):
            head = " ".join(comment).partition(":")[0]
            documented[value[1]] = set(head.split(" or ")) if ":" in " ".join(comment) else set()
            comment = []
        else:
            comment = []
    return documented


def _raised_on_purpose() -> set[type[Exception]]:
    """Every error class of the domain and the API layer, found by importing every module."""
    for package in (pricing, server):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations." not in module.name:
                importlib.import_module(module.name)
    found: set[type[Exception]] = set()
    todo: list[type[Exception]] = [DomainError, CallRefused]
    while todo:
        for subclass in todo.pop().__subclasses__():
            found.add(subclass)
            todo.append(subclass)
    return found


SENT = {reason for _, reason in TABLE.values()}
ENUM = {
    name.removeprefix("ERROR_REASON_")
    for name in errors_pb2.ErrorReason.keys()  # noqa: SIM118
    if name != "ERROR_REASON_UNSPECIFIED"
}


def test_every_error_raised_on_purpose_has_its_own_row_in_the_table() -> None:
    # A new error class without a row would reach callers as INTERNAL (or, a subclass, as
    # its base's reason): each names its status and reason itself.
    missing = {kind.__qualname__ for kind in _raised_on_purpose() - set(TABLE)}
    assert missing == set()


def test_every_reason_sent_is_an_enum_value_documented_with_its_status() -> None:
    documented = _documented_statuses()
    assert set(documented) == ENUM | {"UNSPECIFIED"}  # the parser read every value
    wrong = {
        (kind.__qualname__, status.name, reason)
        for kind, (status, reason) in TABLE.items()
        if status.name not in documented.get(reason, set())
    }
    assert wrong == set()


def test_every_enum_value_is_sent_by_some_error() -> None:
    unsent, unnamed = ENUM - SENT, SENT - ENUM
    assert not unsent, f"reasons nothing sends (send them or reserve them): {unsent}"
    assert not unnamed, f"reasons sent that the API does not name: {unnamed}"


def test_every_error_derives_its_metadata_from_its_fields() -> None:
    by_hand = {k.__qualname__ for k in _raised_on_purpose() if "metadata" in vars(k)}
    assert by_hand == set()
    # the fields are the facts, as strings; the violations travel in the BadRequest
    assert RoleNotAllowed(role="checkout", method="/m").metadata() == {
        "role": "checkout",
        "method": "/m",
    }
    assert IdempotencyKeyReused("r-1").metadata() == {"request_id": "r-1"}
    assert InvalidArgument([Violation("f", "bad")]).metadata() == {}
    assert facts(DatabaseUnavailable("password=secret")) == {}


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


def test_a_refused_state_move_is_failed_precondition_naming_the_move() -> None:
    # No call is known to reach it (tests/unit/pricing/test_order.py,
    # tests/unit/service/test_capture.py); one that did would learn the move, not INTERNAL.
    status = to_status(InvalidTransition(source="REVERSED", target="APPLIED"), PLAIN)
    assert rpc_status.to_status(details(status)).code.name == "FAILED_PRECONDITION"
    assert status.details == "a redemption cannot go from REVERSED to APPLIED"
    info = error_details_pb2.ErrorInfo()
    details(status).details[0].Unpack(info)
    assert (info.reason, dict(info.metadata)) == (
        "INVALID_TRANSITION",
        {"from": "REVERSED", "to": "APPLIED"},
    )
