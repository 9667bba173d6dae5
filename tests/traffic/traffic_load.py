"""Kept-alive clients that never retry: the kind of client a reload hurts.

Each worker holds one HTTP/1.1 connection and sends ``POST /v1/route`` on it, one request at a time. A
request that fails (connection closed before an answer, reset, timeout) is counted as an error and NOT
retried; the worker reconnects for its next request. Shared by the traffic suite and bench/traffic.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tally:
    by_status: Counter[str] = field(default_factory=Counter)
    by_pool: Counter[str] = field(default_factory=Counter)
    by_version: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    # (pool, cookie) pairs when a sticky key is sent
    sticky: list[tuple[str, str]] = field(default_factory=list)

    @property
    def responses(self) -> int:
        return sum(self.by_status.values())

    @property
    def failed(self) -> int:
        """Requests without a 2xx answer: errors plus non-2xx responses."""
        return sum(self.errors.values()) + sum(n for s, n in self.by_status.items() if not s.startswith("2"))

    @property
    def requests(self) -> int:
        return self.responses + sum(self.errors.values())

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]

    def share(self, pool: str) -> float:
        total = sum(self.by_pool.values())
        return 100.0 * self.by_pool[pool] / total if total else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "by_status": dict(self.by_status),
            "by_pool": dict(self.by_pool),
            "by_version": dict(self.by_version),
            "errors": dict(self.errors),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(self.latencies_ms, default=0.0), 2),
        }


class Load:
    """``connections`` kept-alive clients against ``host:port``.

    ``total``: stop after that many requests in all; otherwise run until ``stop()``. ``rate``: requests per
    second over all connections (paced per connection), or as fast as answers come when 0.
    ``cookie``: a callable giving the Cookie header of the n-th request (sticky split tests).
    """

    def __init__(
        self,
        port: int,
        connections: int = 16,
        total: int | None = None,
        rate: float = 0,
        timeout: float = 10,
        host: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
        cookie=None,
    ) -> None:
        self.port = port
        self.host = host
        self.connections = connections
        self.total = total
        self.rate = rate
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.cookie = cookie
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seq = itertools.count(1)
        self._threads: list[threading.Thread] = []

    def _next(self) -> int | None:
        n = next(self._seq)
        if self.total is not None and n > self.total:
            return None
        return n

    def _worker(self, index: int) -> None:
        conn: http.client.HTTPConnection | None = None
        interval = self.connections / self.rate if self.rate else 0.0
        due = time.monotonic() + (interval * index / self.connections if interval else 0.0)
        try:
            while not self._stop.is_set():
                n = self._next()
                if n is None:
                    return
                if interval:
                    delay = due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                    due += interval
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                headers = dict(self.headers)
                cookie = self.cookie(n) if self.cookie else None
                if cookie:
                    headers["Cookie"] = cookie
                body = json.dumps({"id": f"t4-{index}-{n}", "source": "traffic-suite", "type": "telemetry"})
                started = time.perf_counter()
                try:
                    conn.request("POST", "/v1/route", body, headers)
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as exc:
                    with self._lock:
                        self.tally.errors[type(exc).__name__] += 1
                    conn.close()
                    conn = None
                    continue
                elapsed = (time.perf_counter() - started) * 1000.0
                pool = response.getheader("X-Msgroute-Pool") or "-"
                with self._lock:
                    self.tally.by_status[str(response.status)] += 1
                    self.tally.by_pool[pool] += 1
                    self.tally.by_version[response.getheader("X-Router-Version") or "-"] += 1
                    self.tally.latencies_ms.append(elapsed)
                    if cookie:
                        self.tally.sticky.append((pool, cookie))
                if response.will_close:
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def start(self) -> Load:
        self._threads = [
            threading.Thread(target=self._worker, args=(i,), daemon=True, name=f"load-{i}")
            for i in range(self.connections)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Tally:
        self._stop.set()
        return self.wait()

    def wait(self) -> Tally:
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return self.tally

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(port: int, total: int, connections: int = 16, **kwargs: Any) -> Tally:
    """Send ``total`` requests as fast as they are answered and return what the clients saw."""
    return Load(port, connections=connections, total=total, **kwargs).start().wait()
