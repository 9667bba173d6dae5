"""W3C Trace Context (``traceparent``): accepted from the client when valid, never trusted blindly.

``traceparent: 00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>`` (https://www.w3.org/TR/trace-context/).
The router keeps a valid trace id, makes a span of its own (a new parent id for the next hop) and passes
``00-<trace id>-<router span>-<flags>`` to the destination. A malformed header (wrong length or case, non-hex,
an all-zero id, version ``ff``) is replaced by a new trace: a hostile or broken client cannot put arbitrary
text in the destination's header or in the logs, and one that sends nothing still gets a trace id on every
log line about its message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# Version 00 exactly; a later version may append fields after a dash (the spec's forward compatibility).
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\x00-\x20\x7f]*)?")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16


@dataclass(frozen=True, slots=True)
class Trace:
    """The router's span in a trace: what it logs and what it sends on."""

    trace_id: str
    span_id: str
    flags: str
    accepted: bool  # False: the client sent none, or one that was malformed and replaced

    @property
    def traceparent(self) -> str:
        """The header for the next hop: the router's span is the destination's parent."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse(value: bytes | None) -> tuple[str, str] | None:
    """``(trace id, flags)`` of a valid ``traceparent`` value, else ``None``."""
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value.strip(b" \t"))
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest) or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id.decode(), flags.decode()


def new_span_id() -> str:
    span = os.urandom(8).hex()
    return span if span != "0" * 16 else "0000000000000001"


def start(header: bytes | None) -> Trace:
    """The router's span for a request carrying ``header`` (or none)."""
    parsed = parse(header)
    if parsed is None:
        trace_id = os.urandom(16).hex()
        if trace_id == "0" * 32:
            trace_id = "0" * 31 + "1"
        return Trace(trace_id, new_span_id(), "00", False)
    trace_id, flags = parsed
    # Only the sampled bit (01) is defined; unknown bits are not passed on (spec: version 00 owns them).
    return Trace(trace_id, new_span_id(), "01" if int(flags, 16) & 1 else "00", True)


def trace_id_of(traceparent: str) -> str:
    """The trace id of a traceparent this router wrote (``""`` if there is none)."""
    return traceparent[3:35] if len(traceparent) >= 35 else ""
