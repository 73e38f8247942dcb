"""The access log's fast line is the line `logging` would write for the same record."""

import io
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server import logs

FIELDS = st.dictionaries(
    st.sampled_from(["method", "status", "role", "program_id", "customer_id", "order_id"]),
    st.text(max_size=20),
) | st.fixed_dictionaries({"method": st.just("GetAccount"), "duration_ms": st.floats(0, 1e6)})
# Instants within a few years of now, with their milliseconds.
INSTANTS = st.floats(1.7e9, 1.9e9, allow_nan=False)


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger()
    handlers, level, line = root.handlers[:], root.level, logs.access_line
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs.access_line = line


def _through_logging(now: float, fields: dict[str, object]) -> str:
    """What the root handler writes for the access record at `now`."""
    record = logging.getLogger(logs.ACCESS).makeRecord(
        logs.ACCESS, logging.INFO, __file__, 1, "rpc", None, None, extra=fields
    )
    record.created = now
    record.msecs = int((now - int(now)) * 1000) + 0.0
    return logging.getLogger().handlers[0].format(record) + "\n"


@pytest.mark.parametrize("as_json", [True, False])
@given(now=INSTANTS, fields=FIELDS)
def test_the_fast_line_is_the_formatted_record(as_json: bool, now: float, fields: dict) -> None:
    logs.configure(level="INFO", as_json=as_json)
    assert logs.access_line is not None
    assert logs.access_line.line(now, "rpc", fields) == _through_logging(now, fields)


def test_the_line_goes_to_the_handler_stream_at_the_access_level() -> None:
    logs.configure(level="INFO", as_json=True)
    stream = io.StringIO()
    assert logs.access_line is not None
    logs.access_line.handler.setStream(stream)
    logs.access_line.write("rpc", {"method": "GetAccount", "status": "OK"})
    (line,) = stream.getvalue().splitlines()
    assert line.endswith('"message": "rpc", "method": "GetAccount", "status": "OK"}')
