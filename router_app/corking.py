"""One write per response instead of two.

uvicorn writes a response's status line and headers on ``http.response.start`` and its body on
``http.response.body``: two ``send()`` system calls and two TCP segments for every small answer. Profiling
the router under load (``bench/router``) put almost 40% of its time in those two writes. ``CorkedTransport``
holds the writes made during one event-loop step and sends them together right after it, which is what
``TCP_CORK`` would do, without its 200 ms timer. Everything but ``write`` and ``close`` is the real transport.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CorkedTransport:
    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def corked_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's httptools protocol with corked writes, or ``"auto"`` when httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is pinned in requirements.txt
        return "auto"

    class CorkedHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(CorkedTransport(transport, self.loop))  # type: ignore[arg-type]

    return CorkedHttpToolsProtocol
