"""Destination sink for local runs: acknowledges deliveries, exactly once per message id, and keeps a ledger.

Usage: ``python -m router_app.sink --port 9001 [--name sink-a] [--ledger FILE] [--fail-status 503]
[--latency-ms 5]``.

Point the engine at it with ``ROUTER_DESTINATIONS=sink-a=http://127.0.0.1:9001/deliver``. Every POST
(any path) is a delivery, identified by its ``Idempotency-Key`` header (else ``X-Msgroute-Message-Id``,
else the body's ``id``). The first delivery of an id is taken: answered 200 ``{"ack": <id>}``, written to the
ledger.
A redelivery of an id already taken (a router crashed after the delivery and before its acknowledgement
reached Redis, or a client retried) is answered 200 ``{"ack": <id>, "duplicate": true}`` so the sender stops,
and counted as a duplicate — it is not delivered again.

The ledger: ``--ledger FILE`` appends one JSON line per delivery request (``event`` ``delivered`` or
``duplicate``, ``message_id``, ``message_class``, ``trace_id``, ``attempt``, ``router_version``, ``sink``,
``ts``) and is read back at start, so the ids taken survive a restart of the sink; ``GET /metrics`` exports
``msgroute_sink_deliveries_total{sink,message_class}``, ``msgroute_sink_duplicates_total{sink}`` and
``msgroute_sink_refused_total{sink}``. ``GET /stats`` reports the counts (``?ids=1`` adds how often each id
arrived); ``POST /control`` with ``{"fail_status": 503, "latency_ms": 20}`` makes it fail or slow down (0 to
stop failing) to exercise the circuit breaker; ``POST /reset`` clears the counts (not the ledger file);
``GET /health`` answers 200. It binds 127.0.0.1 by default: it is a test tool with an unauthenticated control
endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import IO, Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import Counter as MetricCounter
from starlette.types import Receive, Scope, Send

from router_app import tracing

MAX_TRACKED_IDS = 1_000_000


class Sink:
    """The ASGI app; all state lives here (one event loop, no locks)."""

    def __init__(
        self, name: str, fail_status: int = 0, latency_ms: float = 0.0, ledger: str | None = None
    ) -> None:
        self.name = name
        self.fail_status = fail_status
        self.latency_ms = latency_ms
        self.ids: Counter[str] = Counter()  # id -> delivery requests that carried it (1 = no duplicate)
        self.by_class: Counter[str] = Counter()
        self.received = 0
        self.refused = 0
        self.duplicates = 0
        self.registry = CollectorRegistry(auto_describe=True)
        self._delivered = MetricCounter(
            "msgroute_sink_deliveries", "Messages taken (first delivery of an id).",
            ["sink", "message_class"], registry=self.registry,
        )  # fmt: skip
        self._duplicates = MetricCounter(
            "msgroute_sink_duplicates", "Redeliveries of an id already taken: acknowledged, not delivered.",
            ["sink"], registry=self.registry,
        ).labels(name)  # fmt: skip
        self._refused = MetricCounter(
            "msgroute_sink_refused", "Deliveries answered with the configured failure status.", ["sink"],
            registry=self.registry,
        ).labels(name)  # fmt: skip
        self._ledger: IO[str] | None = None
        if ledger is not None:
            self._load(ledger)
            self._ledger = open(ledger, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the app

    def _load(self, path: str) -> None:
        """Ids taken before a restart stay taken."""
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a crash
                    if isinstance(record, dict) and record.get("event") == "delivered":
                        self.ids[str(record.get("message_id", ""))] += 0
        except FileNotFoundError:
            return
        self.ids = Counter(dict.fromkeys(self.ids, 1))

    def stats(self, with_ids: bool) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "name": self.name,
            "received": self.received,
            "unique": len(self.ids),
            "duplicates": self.duplicates,
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
        elif method == "GET" and path == "/metrics":
            await _send(send, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST.encode())
        elif method == "GET" and path == "/stats":
            await _answer(send, 200, self.stats(b"ids=1" in scope.get("query_string", b"")))
        elif method == "POST" and path == "/control":
            await self._control(send, body)
        elif method == "POST" and path == "/reset":
            self.ids.clear()
            self.by_class.clear()
            self.received = self.refused = self.duplicates = 0
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
            self._refused.inc()
            await _answer(send, self.fail_status, {"detail": "sink set to fail"})
            return
        headers = dict(scope["headers"])
        message_id = (
            headers.get(b"idempotency-key", b"").decode(errors="replace")
            or headers.get(b"x-msgroute-message-id", b"").decode(errors="replace")
            or _id_from_body(body)
        )
        message_class = headers.get(b"x-msgroute-class", b"unknown").decode(errors="replace")
        self.received += 1
        duplicate = self.ids.get(message_id, 0) > 0
        if duplicate or len(self.ids) < MAX_TRACKED_IDS:
            self.ids[message_id] += 1
        if duplicate:
            self.duplicates += 1
            self._duplicates.inc()
        else:
            self.by_class[message_class] += 1
            self._delivered.labels(self.name, message_class).inc()
        self._record(headers, message_id, message_class, duplicate)
        answer = {"ack": message_id, "sink": self.name}
        await _answer(send, 200, {**answer, "duplicate": True} if duplicate else answer)

    def _record(
        self, headers: dict[bytes, bytes], message_id: str, message_class: str, duplicate: bool
    ) -> None:
        if self._ledger is None:
            return
        parsed = tracing.parse(headers.get(b"traceparent"))
        record = {
            "ts": _timestamp(time.time()),
            "sink": self.name,
            "event": "duplicate" if duplicate else "delivered",
            "message_id": message_id,
            "message_class": message_class,
            "trace_id": parsed[0] if parsed else "",
            "attempt": headers.get(b"x-msgroute-attempt", b"").decode(errors="replace"),
            "router_version": headers.get(b"x-router-version", b"").decode(errors="replace"),
        }
        self._ledger.write(json.dumps(record, ensure_ascii=True) + "\n")


def _id_from_body(body: bytes) -> str:
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    await _send(send, status, json.dumps(body).encode(), b"application/json")


async def _send(send: Send, status: int, payload: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
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
    parser.add_argument("--ledger", help="append one JSON line per delivery here (read back at start)")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be 1..65535")
    if args.fail_status and not 400 <= args.fail_status <= 599:
        parser.error("--fail-status must be 0 or 400..599")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    app = Sink(args.name, args.fail_status, args.latency_ms, args.ledger)
    uvicorn.run(
        app, host=args.host, port=args.port, access_log=False, log_level="warning", server_header=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
