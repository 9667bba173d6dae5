"""Outermost ASGI layer: version headers on every answer, metrics for ``/v1/route``.

A plain ASGI wrapper rather than ``BaseHTTPMiddleware``: it adds no task or stream per request, and because
it wraps the whole app (outside Starlette's error middleware) it also sees and stamps 500 answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router_app import metrics

ROUTE_PATH = "/v1/route"
MIRRORED_HEADER = b"x-msgroute-mirrored"


def is_mirrored(headers: Iterable[tuple[bytes, bytes]], shadow_mode: bool) -> bool:
    """Mirrored (shadow) traffic is flagged by nginx's mirror with ``X-Msgroute-Mirrored: 1``.

    In shadow mode everything is a copy, whatever the header says.
    """
    if shadow_mode:
        return True
    for name, value in headers:
        if name == MIRRORED_HEADER:
            return value.strip() == b"1"
    return False


class EdgeMiddleware:
    """Stamps ``X-Router-Version``/``X-Router-Mode`` and measures route requests end to end."""

    def __init__(self, app: ASGIApp, version: str, mode: str) -> None:
        self.app = app
        self.shadow_mode = mode == "shadow"
        self.headers = [(b"x-router-version", version.encode()), (b"x-router-mode", mode.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] != ROUTE_PATH:
            await self.app(scope, receive, self._stamping(send))
            return

        mirrored = is_mirrored(scope["headers"], self.shadow_mode)
        # Later stages read this to make sure mirrored traffic is never dispatched.
        scope.setdefault("state", {})["mirrored"] = mirrored
        status = 500
        stamped = self._stamping(send)

        async def send_and_capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await stamped(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_capture)
        finally:
            metrics.observe_route(status, mirrored, time.perf_counter() - start)

    def _stamping(self, send: Send) -> Send:
        headers = self.headers

        async def send_stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        return send_stamped
