"""One JSON object per log line, so the container log is machine-readable without a parser per format.

Start, configuration, state changes and problems are logged; there is deliberately no per-request access log
(it would cost more than routing). A line written while a request is handled carries its ``request_id``
(the sender's ``X-Request-Id`` or one the engine made up, echoed in the answer) and its ``trace_id`` (W3C
trace context); a line about a message carries its ``message_id`` and ``trace_id``, dispatch included.
Problems that can come in floods (deliveries failing while a destination is down) go through
``RateLimitedLog``, which says how many lines it held back.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

LOGGER_NAME = "router_app"
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
trace_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"ts", "level", "logger", "msg", "request_id"?, "trace_id"?, ...fields}``.

    Structured values go in ``extra={"fields": {...}}`` so they stay separate keys instead of being
    interpolated into the message.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        trace_id = trace_id_var.get()
        if trace_id:
            entry["trace_id"] = trace_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # ASCII only: a message id or metadata with U+2028, U+0085 or another control character must not
        # split or corrupt the line for a reader that treats them as line ends.
        return json.dumps(entry, default=str, ensure_ascii=True)


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (uvicorn's included) through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


class RateLimitedLog:
    """At most ``burst`` lines per ``interval_s`` per message text; the next line sent reports the rest."""

    def __init__(self, logger: logging.Logger, interval_s: float = 1.0, burst: int = 5) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.burst = burst
        self._windows: dict[str, list[float]] = {}  # msg -> [window start, sent, suppressed]

    def _log(self, level: int, msg: str, fields: dict[str, Any]) -> None:
        now = time.monotonic()
        window = self._windows.get(msg)
        if window is None or now - window[0] >= self.interval_s:
            suppressed = int(window[2]) if window else 0
            if len(self._windows) > 1000:  # bounded: messages embed destination names, not ids
                self._windows.clear()
            window = self._windows[msg] = [now, 0, 0]
            if suppressed:
                fields = {**fields, "suppressed_before": suppressed}
        if window[1] >= self.burst:
            window[2] += 1
            return
        window[1] += 1
        self.logger.log(level, msg, extra={"fields": fields})

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, fields)
