"""The HTTP/1.1 connection protocol the router serves with: uvicorn's httptools protocol, corked, with limits.

Why hand-written: the pinned uvicorn (0.54) bounds nothing on its httptools protocol. It appends the URL
without limit (``self.url += url``: 120 MB of URL stalled every request for seconds and took 336 MB), lets
httptools accumulate any header value, arms no timer before a request's head is complete (a connection that
sends half a header is kept for ever) and checks ``limit_concurrency`` only after a whole head arrived, so
clients that never finish one still hold their file descriptors. ``h11_max_incomplete_event_size`` exists
only for the h11 protocol, which costs about twice as much per request and has the same missing timers. So
this subclass adds,
at the byte level and before anything is parsed or allocated:

* request line at most ``max_request_line`` bytes (else 414), request head (line + headers) at most
  ``max_head`` bytes and ``max_headers`` fields (else 431);
* a head timeout from accept (or from the first byte of a later request on a keep-alive connection) and a body
  timeout from the end of the head (408 when nothing was answered yet, then close);
* at most ``max_connections`` open connections: the next one is answered 503 with ``Retry-After`` and closed
  at once, so its descriptor is free again before the process runs out.

Idle keep-alive connections are closed by uvicorn's own ``timeout_keep_alive`` (configured, not rewritten).
Every refusal here is a small JSON answer with ``Connection: close``; the application never sees the request.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from typing import Any

import httptools
import orjson

from router_app.corking import corked_protocol


@dataclass(frozen=True)
class Limits:
    max_request_line: int = 8 * 1024
    max_head: int = 16 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    max_connections: int = 1024


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the answer was recorded on the protocol."""


def refusal(status: int, detail: str, retry_after: int | None = None) -> bytes:
    """A complete ``Connection: close`` answer with a JSON body."""
    body = orjson.dumps({"detail": detail})
    head = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def guarded_protocol(limits: Limits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol (corked) with ``limits`` applied to every connection."""
    base: Any = corked_protocol()
    if isinstance(base, str):  # pragma: no cover - httptools is pinned in requirements.txt
        raise RuntimeError("httptools is required")

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._in_head = True
            self._head_bytes = 0
            self._header_count = 0
            self._timer: asyncio.TimerHandle | None = None
            self._refused: tuple[int, str] | None = None
            self._closed_by_us = False
            if len(self.connections) > limits.max_connections:
                self._refuse(503, f"too many connections (at most {limits.max_connections}); retry", 1)
                return
            self._arm(limits.header_timeout_s, self._head_timed_out)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        # -- timers ------------------------------------------------------------------------------------------

        def _arm(self, delay: float, callback: Any) -> None:
            self._disarm()
            self._timer = self.loop.call_later(delay, callback)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _head_timed_out(self) -> None:
            self._timer = None
            self._refuse(408, f"request head not received within {limits.header_timeout_s:g} s")

        def _body_timed_out(self) -> None:
            self._timer = None
            cycle = self.cycle
            if cycle is not None and cycle.response_started:
                self.transport.close()
                return
            self._refuse(408, f"request body not received within {limits.body_timeout_s:g} s")

        # -- refusing ----------------------------------------------------------------------------------------

        def _refuse(self, status: int, detail: str, retry_after: int | None = None) -> None:
            """Answer and close; a request the application is waiting on sees a disconnect."""
            if self._closed_by_us:
                return
            self._closed_by_us = True
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(refusal(status, detail, retry_after))
                self.transport.close()
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()

        def _limit(self, status: int, detail: str) -> None:
            self._refused = (status, detail)
            raise _Refused

        # -- bytes in ----------------------------------------------------------------------------------------

        def data_received(self, data: bytes) -> None:
            if self._closed_by_us:
                return
            self._unset_keepalive_if_required()
            if self._in_head and self._timer is None:
                self._arm(limits.header_timeout_s, self._head_timed_out)
            while data and not self._closed_by_us:
                if self._in_head:
                    room = limits.max_head - self._head_bytes
                    if room <= 0:
                        self._too_large()
                        return
                    if len(data) > room:
                        piece, data = data[:room], data[room:]
                    else:
                        piece, data = data, b""
                    self._head_bytes += len(piece)
                else:
                    piece, data = data, b""
                if not self._feed(piece):
                    return

        def _too_large(self) -> None:
            if len(getattr(self, "url", b"")) >= limits.max_request_line and not self._header_count:
                self._refuse(414, f"request line exceeds {limits.max_request_line} bytes")
            else:
                self._refuse(431, f"request head exceeds {limits.max_head} bytes")

        def _feed(self, piece: bytes) -> bool:
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return False
            except httptools.HttpParserError:
                if self._refused is not None:
                    self._refuse(*self._refused)
                else:
                    self._refuse(400, "invalid HTTP request")
                return False
            return True

        # -- parser callbacks --------------------------------------------------------------------------------

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._header_count = 0

        def on_url(self, url: bytes) -> None:
            if len(self.url) + len(url) > limits.max_request_line:
                self._limit(414, f"request line exceeds {limits.max_request_line} bytes")
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > limits.max_headers:
                self._limit(431, f"more than {limits.max_headers} header fields")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            self._arm(limits.body_timeout_s, self._body_timed_out)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            self._in_head = True
            self._head_bytes = 0
            super().on_message_complete()

    return GuardedProtocol
