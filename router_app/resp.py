"""A minimal pipelining Redis (RESP2) client for the one command on the answer path: the durable admission.

Every accepted message costs one script call before ``queued`` is answered. Through redis-py's asyncio client
that call took ~230 µs of the event loop on the bench machine (connection pool, command packing, the pure
Python reply parser), a quarter of a core at 1,000 msg/s; this client writes the command into one connection
and resolves a future when its reply is parsed, ~20 µs. Calls made at the same time share the connection and
are answered in order (Redis pipelining), so concurrency costs no extra connections. Everything else the
durable queue does (reads, acknowledgements, upkeep) is batched and stays with redis-py.

A connection failure or a timeout fails every call waiting on that connection and closes it; the next call
connects again (with ``AUTH`` and ``SELECT`` from the URL).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CRLF = b"\r\n"


class RespError(Exception):
    """An error reply from Redis (``-ERR ...``, ``-NOSCRIPT ...``)."""


class Incomplete(Exception):
    """The buffer does not hold a whole reply yet."""


def encode(args: tuple[Any, ...]) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out += (b"$%d\r\n" % len(data), data, CRLF)
    return b"".join(out)


_BULK = ord("$")


def _bulk(buf: bytes | bytearray, pos: int) -> tuple[bytes | None, int]:
    end = buf.find(CRLF, pos)
    if end < 0:
        raise Incomplete
    size = int(buf[pos + 1 : end])
    pos = end + 2
    if size < 0:
        return None, pos
    if len(buf) < pos + size + 2:
        raise Incomplete
    return bytes(buf[pos : pos + size]), pos + size + 2


def parse(buf: bytes | bytearray, pos: int = 0) -> tuple[Any, int]:
    """One reply from ``buf[pos:]`` and the position after it; ``Incomplete`` if it is not all there.
    Bulk strings inside arrays are read in the array's loop: a stream entry is a few dozen of them."""
    end = buf.find(CRLF, pos)
    if end < 0:
        raise Incomplete
    kind = buf[pos]
    if kind == _BULK:
        return _bulk(buf, pos)
    line = bytes(buf[pos + 1 : end])
    if kind == 0x2A:  # *
        count = int(line)
        pos = end + 2
        if count < 0:
            return None, pos
        items: list[Any] = []
        append, find, size_of = items.append, buf.find, len(buf)
        for _ in range(count):
            if pos < size_of and buf[pos] == _BULK:  # _bulk inlined: the common case, by far
                end = find(CRLF, pos)
                if end < 0:
                    raise Incomplete
                size = int(buf[pos + 1 : end])
                pos = end + 2
                if size < 0:
                    append(None)
                    continue
                if size_of < pos + size + 2:
                    raise Incomplete
                append(bytes(buf[pos : pos + size]))
                pos += size + 2
            else:
                item, pos = parse(buf, pos)
                append(item)
        return items, pos
    if kind == 0x2B:  # +
        return line, end + 2
    if kind == 0x2D:  # -
        return RespError(line.decode(errors="replace")), end + 2
    if kind == 0x3A:  # :
        return int(line), end + 2
    raise ValueError(f"not a RESP reply: {bytes([kind])!r}")


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.closed = False
        self._pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        pos = 0
        try:
            while self.waiters and pos < len(self.buffer):
                reply, pos = parse(self.buffer, pos)
                waiter = self.waiters.popleft()
                if not waiter.done():
                    waiter.set_result(reply)
        except Incomplete:
            pass
        except ValueError as exc:
            self.fail(ConnectionError(f"bad reply from Redis: {exc}"))
            return
        del self.buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError("connection to Redis lost"))

    def fail(self, exc: Exception) -> None:
        self.closed = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def send(self, payload: bytes, replies: int = 1) -> list[asyncio.Future[Any]]:
        """Queue ``payload`` (``replies`` commands); one future per reply, in order. Everything queued in one
        turn of the event loop goes out in one write: under load the admissions of the requests read in the
        same turn share a system call, which costs 100-400 µs each on the busy bench machine."""
        loop = asyncio.get_running_loop()
        waiters = [loop.create_future() for _ in range(replies)]
        self.waiters.extend(waiters)
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(payload)
        return waiters

    def _flush(self) -> None:
        payload, self._pending = b"".join(self._pending), []
        if self.transport is not None and not self.closed:
            self.transport.write(payload)


class RespClient:
    """One pipelined connection to the Redis named by a ``redis://``, ``rediss://`` or ``unix://`` URL."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.timeout_s = timeout_s
        self._scheme = parts.scheme
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._path = parts.path
        self._password = unquote(parts.password) if parts.password else query.get("password", [None])[0]
        self._username = unquote(parts.username) if parts.username else None
        db = parts.path.lstrip("/") if parts.scheme != "unix" else query.get("db", ["0"])[0]
        self._db = int(db or 0)
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._scheme == "unix":
            _, conn = await loop.create_unix_connection(_Connection, self._path)
        else:
            context = ssl.create_default_context() if self._scheme == "rediss" else None
            _, conn = await loop.create_connection(_Connection, self._host, self._port, ssl=context)
        hello: list[tuple[Any, ...]] = []
        if self._password is not None:
            user = (self._username,) if self._username else ()
            hello.append(("AUTH", *user, self._password))
        if self._db:
            hello.append(("SELECT", self._db))
        for command in hello:
            reply = await conn.send(encode(command))[0]
            if isinstance(reply, RespError):
                conn.fail(ConnectionError(str(reply)))
                raise ConnectionError(f"Redis refused {command[0]}: {reply}")
        return conn

    async def _connection(self) -> _Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if self._connecting is None:  # one connect for all the callers that find no connection
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            self._conn = await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        return self._conn

    async def call(self, *args: Any) -> Any:
        """The reply to one command; ``RespError`` for an error reply, ``ConnectionError`` or ``TimeoutError``
        when there is none (the connection is then closed: a late reply must not answer the next command)."""
        reply = (await self.pipeline([args]))[0]
        if isinstance(reply, RespError):
            raise reply
        return reply

    async def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The replies to several commands written at once (one round trip); an error reply is returned as a
        ``RespError`` in its place, a connection failure or timeout raised as in ``call``."""
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await self._connection()
                waiters = conn.send(b"".join(encode(c) for c in commands), len(commands))
                replies = await asyncio.gather(*waiters, return_exceptions=True)  # every outcome retrieved
        except TimeoutError:
            if conn is not None:
                conn.fail(TimeoutError("no reply from Redis in time"))
            raise
        except OSError as exc:
            raise ConnectionError(str(exc)) from exc
        failed = [r for r in replies if isinstance(r, BaseException) and not isinstance(r, RespError)]
        if failed:
            raise ConnectionError(str(failed[0]))
        return replies

    def close(self) -> None:
        if self._conn is not None:
            self._conn.fail(ConnectionError("client closed"))
            self._conn = None
