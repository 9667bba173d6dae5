"""Figures for the router under hostile clients (issue 10): a normal client's latency while 200 slow clients
and one endless URL are open, the router's memory, and the in-process cost of the input checks.

Usage (from the repository root, venv active; needs nothing but Python)::

    python -m bench.router.hostile [--slow 200] [--requests 300] [--rounds 30]

It starts its own ``python -m router_app`` on a free 127.0.0.1 port and stops it at the end. A benchmark, not
a test: it prints figures and exits 0 unless something failed to run. The tests assert the behaviour
(tests/router_app_integration/test_hostile_clients.py) with a generous bound; the figures are here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from router_app.app import create_app
from router_app.config import Settings
from tests.support import processes
from tests.support.hostile import EndlessUrl, SlowClients, percentile, rss_bytes, status_of, timed_requests


def _ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 3)


def under_attack(slow: int, requests: int, rounds: int) -> dict[str, Any]:
    router = processes.start_router(ROUTER_HEADER_TIMEOUT_S="60", ROUTER_LOG_LEVEL="WARNING")
    try:
        port, pid = router.port, router.proc.pid
        timed_requests(port, 50)
        idle = timed_requests(port, requests)
        rss_idle = rss_bytes(pid)
        clients = SlowClients(port, slow)
        endless = EndlessUrl(port)
        loaded: list[float] = []
        started = time.perf_counter()
        refused_after = None
        for _ in range(rounds):
            if endless.feed() is False and refused_after is None:
                refused_after = endless.sent
            clients.tick()
            loaded += timed_requests(port, max(1, requests // rounds))
        elapsed = time.perf_counter() - started
        answer = endless.answer()
        sent_before_refusal = refused_after if refused_after is not None else endless.sent
        figures = {
            "slow_clients_open": len(clients.sockets),
            "endless_url_status": status_of(answer),
            "endless_url_bytes_sent_before_refusal": sent_before_refusal,
            "idle_p50_ms": _ms(idle, 0.5),
            "idle_p99_ms": _ms(idle, 0.99),
            "attacked_p50_ms": _ms(loaded, 0.5),
            "attacked_p99_ms": _ms(loaded, 0.99),
            "p99_ratio": round(percentile(loaded, 0.99) / percentile(idle, 0.99), 2),
            "rss_idle_mb": round(rss_idle / 2**20, 1),
            "rss_attacked_mb": round(rss_bytes(pid) / 2**20, 1),
            "attack_seconds": round(elapsed, 2),
        }
        clients.close()
        endless.close()
        return figures
    finally:
        router.kill()


def edge_cost(count: int = 20_000) -> dict[str, float]:
    """Microseconds per ``POST /v1/route`` through the ASGI layers in process (no sockets), decide-only."""
    app = create_app(Settings())
    body = (
        b'{"id":"bench-%d","source":"sensor-gateway","type":"security.login-anomaly","priority":3,'
        b'"metadata":{"region":"eu"},"payload":{"host":"db-7","at":"12:00:00","n":[1,2,3]}}'
    )
    headers = [(b"content-type", b"application/json"), (b"host", b"x")]

    async def run() -> float:
        async def send(_: Any) -> None:
            return None

        started = time.perf_counter()
        for i in range(count):
            raw = body % i
            sent = False

            async def receive(raw: bytes = raw) -> dict[str, Any]:
                nonlocal sent
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}

            scope = {
                "type": "http",
                "method": "POST",
                "path": "/v1/route",
                "headers": [*headers, (b"content-length", str(len(raw)).encode())],
            }
            await app(scope, receive, send)
        return (time.perf_counter() - started) / count * 1e6

    return {"edge_us_per_route_request": round(asyncio.run(run()), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    figures = {**under_attack(args.slow, args.requests, args.rounds), **edge_cost()}
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
