"""Destination sink for local runs: acknowledges and counts deliveries.

Usage: ``python -m router_app.sink --port 9001 [--name sink-a] [--fail-status 503] [--latency-ms 5]``.

Point the engine at it with ``ROUTER_DESTINATIONS=sink-a=http://127.0.0.1:9001/deliver``. Every POST
(any path) is a delivery: answered 200 with ``{"ack": <id>}`` and counted by message id, so a test can check
that each message arrived exactly once. ``GET /stats`` reports the counts (``?ids=1`` adds the per-id counts);
``POST /control`` with ``{"fail_status": 503, "latency_ms": 20}`` makes it fail or slow down (0 to stop
failing) to exercise the circuit breaker; ``POST /reset`` clears the counts; ``GET /health`` answers 200.
It binds 127.0.0.1 by default: it is a test tool with an unauthenticated control endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

MAX_TRACKED_IDS = 1_000_000


class Sink:
    """The ASGI app; all state lives here (one event loop, no locks)."""

    def __init__(self, name: str, fail_status: int = 0, latency_ms: float = 0.0) -> None:
        self.name = name
        self.fail_status = fail_status
        self.latency_ms = latency_ms
        self.ids: Counter[str] = Counter()
        self.by_class: Counter[str] = Counter()
        self.received = 0
        self.refused = 0

    def stats(self, with_ids: bool) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "name": self.name,
            "received": self.received,
            "unique": len(self.ids),
            "duplicates": sum(count - 1 for count in self.ids.values() if count > 1),
            "refused": self.refused,
            "by_class": dict(self.by_class),
            "fail_status": self.fail_status,
            "latency_ms": self.latency_ms,
        }
        if with_ids:
            stats["ids"] = dict(self.ids)
        return stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/health":
            await _answer(send, 200, {"status": "ok"})
        elif method == "GET" and path == "/stats":
            await _answer(send, 200, self.stats(b"ids=1" in scope.get("query_string", b"")))
        elif method == "POST" and path == "/control":
            await self._control(send, body)
        elif method == "POST" and path == "/reset":
            self.ids.clear()
            self.by_class.clear()
            self.received = self.refused = 0
            await _answer(send, 200, self.stats(False))
        elif method == "POST":
            await self._deliver(scope, send, body)
        else:
            await _answer(send, 404, {"detail": "not found"})

    async def _control(self, send: Send, body: bytes) -> None:
        try:
            change = json.loads(body or b"{}")
            fail_status = int(change.get("fail_status", self.fail_status))
            latency_ms = float(change.get("latency_ms", self.latency_ms))
        except (ValueError, TypeError, AttributeError):
            await _answer(send, 400, {"detail": "expected {fail_status?: int, latency_ms?: number}"})
            return
        if (fail_status and not 400 <= fail_status <= 599) or not 0 <= latency_ms <= 60_000:
            await _answer(send, 400, {"detail": "fail_status 0 or 400..599, latency_ms 0..60000"})
            return
        self.fail_status, self.latency_ms = fail_status, latency_ms
        await _answer(send, 200, self.stats(False))

    async def _deliver(self, scope: Scope, send: Send, body: bytes) -> None:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if self.fail_status:
            self.refused += 1
            await _answer(send, self.fail_status, {"detail": "sink set to fail"})
            return
        headers = dict(scope["headers"])
        message_id = headers.get(b"x-msgroute-message-id", b"").decode() or _id_from_body(body)
        self.received += 1
        if message_id in self.ids or len(self.ids) < MAX_TRACKED_IDS:
            self.ids[message_id] += 1
        self.by_class[headers.get(b"x-msgroute-class", b"unknown").decode()] += 1
        await _answer(send, 200, {"ack": message_id, "sink": self.name})


def _id_from_body(body: bytes) -> str:
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m router_app.sink", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--name", default="sink")
    parser.add_argument(
        "--fail-status", type=int, default=0, help="answer deliveries with this status (0: 200)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering a delivery")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be 1..65535")
    if args.fail_status and not 400 <= args.fail_status <= 599:
        parser.error("--fail-status must be 0 or 400..599")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    app = Sink(args.name, args.fail_status, args.latency_ms)
    uvicorn.run(
        app, host=args.host, port=args.port, access_log=False, log_level="warning", server_header=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
