"""A small keep-alive HTTP/1.1 client for delivering messages to destinations.

Dispatch runs on the same event loop as the API, so its cost per delivery is the API's loss: this client is an
asyncio protocol with httptools' (llhttp) response parser and a pool of idle connections per destination, a
fraction of what a general-purpose client spends. It only POSTs and reads one response per request.
"""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import urlsplit

import httptools

# Servers close idle keep-alive connections (uvicorn after 5 s); never reuse one that old, so a write does not
# race the server's close.
MAX_IDLE_S = 4.0


class DeliveryError(Exception):
    """The destination could not be reached or did not answer in time (a breaker failure)."""


class InvalidHeader(ValueError):
    """A header name or value that would change the request's framing (CR, LF, NUL, or a bad name)."""


# A header line is one line: a value holding CR or LF would start another header (or the body), and NUL is
# refused by every parser. Names are RFC 9110 tokens. Checked on every request whatever the caller validated.
_BAD_VALUE = re.compile(rb"[\r\n\x00]")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """``Name: value\r\n`` lines; ``InvalidHeader`` (nothing written) if any name or value is unsafe."""
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise InvalidHeader(f"invalid header name {name!r}")
        if _BAD_VALUE.search(value):
            raise InvalidHeader(f"header {name.decode()} holds CR, LF or NUL")
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.status = 0
        self.keep_alive = True
        self.closed = False
        self.last_used = time.monotonic()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(DeliveryError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(DeliveryError("connection closed by destination"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.body = []

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.status, b"".join(self.body)))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpDestination:
    """POSTs to one URL over pooled keep-alive connections."""

    def __init__(self, url: str, timeout_s: float, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = (parts.path or "/").encode()
        host_header = parts.netloc.encode()
        self._head = b"POST " + self.path + b" HTTP/1.1\r\nHost: " + host_header + b"\r\n"
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self._idle: list[_Connection] = []

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.last_used < MAX_IDLE_S:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except OSError as exc:
            raise DeliveryError(f"cannot connect: {exc.strerror or exc}") from None
        return conn

    async def post(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        """Status and body of the answer; ``DeliveryError`` when there is none within the timeout."""
        lines = header_lines(headers)
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await self._connection()
                conn.waiter = asyncio.get_running_loop().create_future()
                assert conn.transport is not None
                conn.transport.write(
                    self._head
                    + b"Content-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n"
                    + lines
                    + b"\r\n"
                    + body
                )
                result = await conn.waiter
        except TimeoutError:
            if conn is not None:
                conn.close()
            raise DeliveryError(f"no answer within {self.timeout_s:g} s") from None
        except BaseException:  # a failed or cancelled exchange leaves the connection in an unknown state
            if conn is not None:
                conn.close()
            raise
        conn.waiter = None
        conn.last_used = time.monotonic()
        if conn.keep_alive and not conn.closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return result

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
