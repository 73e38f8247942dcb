"""The server's log: JSON lines (or plain text) on stderr, and the access log's fast line.

Every log record goes through `logging`, formatted by the root handler. The access log is
the one line written per call, on the hot path: built through a `LogRecord` and the JSON
formatter it cost about 30 µs a call (the caller's frame looked up, a dozen attributes
set, the formatter's merging), so `AccessLine` writes the same line, field for field, into
the same handler's stream itself (about 5 µs). Its level is still the `loyalty.access`
logger's, so `--log-level WARNING` silences it as before.
"""

import json
import logging
import os
import sys
import time
from collections.abc import Mapping

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

ACCESS = "loyalty.access"
_JSON_HEAD = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
_TEXT_HEAD = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """Plain lines that keep a record's extra fields: `... loyalty.access: rpc method=... `."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in RESERVED_ATTRS and not key.startswith("_")
        ]
        return " ".join([line, *extra]) if extra else line


class AccessLine:
    """Writes the access log's line as the root handler would format its record."""

    def __init__(self, handler: logging.StreamHandler, *, as_json: bool) -> None:  # type: ignore[type-arg]
        self.handler = handler
        self.as_json = as_json
        self._second = -1
        self._stamp = ""

    def write(self, message: str, fields: Mapping[str, object]) -> None:
        line = self.line(time.time(), message, fields)
        handler = self.handler
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.stream.flush()
        finally:
            handler.release()

    def line(self, now: float, message: str, fields: Mapping[str, object]) -> str:
        """The line the handler's formatter writes for this record at `now`."""
        if self.as_json:
            return self._json(now, message, fields)
        return self._text(now, message, fields)

    def _asctime(self, now: float) -> str:
        """`logging`'s default asctime (local time, milliseconds after a comma)."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"

    def _json(self, now: float, message: str, fields: Mapping[str, object]) -> str:
        head = {
            "time": self._asctime(now),
            "level": "INFO",
            "logger": ACCESS,
            "process": os.getpid(),  # asked each time: `--workers` forks after this is set up
            "message": message,
        }
        return json.dumps(head | dict(fields)) + "\n"

    def _text(self, now: float, message: str, fields: Mapping[str, object]) -> str:
        head = f"{self._asctime(now)} INFO {os.getpid()} {ACCESS}: {message}"
        return " ".join([head, *(f"{key}={value}" for key, value in fields.items())]) + "\n"


# Set by `configure`: the access log's line written straight into the root handler's
# stream. None (tests, tools that keep `logging` as it was): through `logging` as usual.
access_line: AccessLine | None = None


def configure(*, level: str, as_json: bool) -> None:
    """Structured JSON lines by default (one per call from the access log), or plain text."""
    global access_line
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(
            JsonFormatter(
                _JSON_HEAD,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(TextFormatter(_TEXT_HEAD))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    access_line = AccessLine(handler, as_json=as_json)
