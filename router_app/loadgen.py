"""Bounded synthetic traffic for ``/v1/route``.

Usage: ``python -m router_app.loadgen --target URL --rate R --duration S``.

Standard library only (threads and keep-alive ``http.client`` connections) so it runs anywhere the service
runs, the container image included. It sends only to ``--target``, never follows redirects, schedules at most
``rate * duration`` requests (duration capped at one hour) and stops by itself, or on SIGTERM/SIGINT, always
printing a final summary. Output is one JSON object per line: a ``report`` per period, then a ``summary``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import signal
import sys
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

MAX_DURATION_S = 3600.0
MAX_RATE = 20_000.0
MAX_CONCURRENCY = 512
# uvicorn closes idle keep-alive connections after 5 s; reconnecting before that avoids counting a
# server-side idle close as a connection error at low rates.
IDLE_RECONNECT_S = 2.0
NO_HEADER = "<none>"
ROUTE_PATH = "/v1/route"
MESSAGE_TYPES = ("telemetry", "status", "report", "heartbeat", "alert", "command", "escalation")
TYPE_WEIGHTS = (40, 20, 10, 10, 10, 6, 4)
SOURCES = ("sensor-gateway", "ops-console", "billing", "fleet-tracker", "scheduler")


@dataclass(frozen=True)
class Target:
    """Where all traffic goes: one origin and the route path under its base path."""

    scheme: str
    host: str
    port: int
    path: str

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)


def parse_target(url: str) -> Target:
    """``http(s)://host[:port][/base]`` -> ``Target``; anything else is refused with a reason."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"target must be http(s)://HOST[:PORT][/BASE], got {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"target must not carry a query, fragment or credentials: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"target has an invalid port: {url!r}") from None
    return Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/") + ROUTE_PATH)


def build_message(rng: random.Random, msg_id: str) -> dict[str, Any]:
    """A plausible route message: mostly routine types, some strategic ones, optional hints."""
    msg_type = rng.choices(MESSAGE_TYPES, TYPE_WEIGHTS)[0]
    message: dict[str, Any] = {
        "id": msg_id,
        "source": rng.choice(SOURCES),
        "type": msg_type,
        "payload": {"seq": rng.randrange(1_000_000), "value": round(rng.uniform(0, 100), 3), "unit": "pct"},
    }
    if rng.random() < 0.2:
        message["priority"] = rng.randrange(10)
    if rng.random() < 0.5:
        message["ttl_ms"] = rng.choice((5_000, 30_000, 60_000))
    return message


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (an observed value, never interpolated); ``None`` without data."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Tally:
    """Outcomes over one period (or the whole run)."""

    by_status: Counter[str] = field(default_factory=Counter)
    by_version: Counter[str] = field(default_factory=Counter)
    by_pool: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: array = field(default_factory=lambda: array("d"))

    def add_response(self, status: int, version: str | None, pool: str | None, latency_ms: float) -> None:
        self.by_status[str(status)] += 1
        self.by_version[version or NO_HEADER] += 1
        if pool is not None:
            self.by_pool[pool] += 1
        self.latencies_ms.append(latency_ms)

    def snapshot(self) -> dict[str, Any]:
        """Counts add up: ``requests == responses + connection_errors``, ``responses == sum(by_status)``."""
        ordered = sorted(self.latencies_ms)
        responses = sum(self.by_status.values())
        errors = sum(self.errors.values())

        def ms(q: float) -> float | None:
            value = percentile(ordered, q)
            return None if value is None else round(value, 3)

        return {
            "requests": responses + errors,
            "responses": responses,
            "by_status": dict(sorted(self.by_status.items())),
            "by_version": dict(sorted(self.by_version.items())),
            "by_pool": dict(sorted(self.by_pool.items())),
            "connection_errors": errors,
            "errors_by_kind": dict(sorted(self.errors.items())),
            "latency_ms": {"p50": ms(50), "p95": ms(95), "p99": ms(99), "max": ms(100)},
        }


class Recorder:
    """Thread-safe sink for worker outcomes, keeping the current period and the whole run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = Tally()
        self._period = Tally()

    def response(self, status: int, version: str | None, pool: str | None, latency_ms: float) -> None:
        with self._lock:
            self.total.add_response(status, version, pool, latency_ms)
            self._period.add_response(status, version, pool, latency_ms)

    def error(self, kind: str) -> None:
        with self._lock:
            self.total.errors[kind] += 1
            self._period.errors[kind] += 1

    def take_period(self) -> Tally:
        with self._lock:
            period, self._period = self._period, Tally()
        return period


class Schedule:
    """Hands out send times ``start + i / rate`` until ``end``: the rate holds however many workers run."""

    def __init__(self, start: float, rate: float, duration: float) -> None:
        self.start = start
        self.end = start + duration
        self.rate = rate
        self._next = 0
        self._lock = threading.Lock()

    def next_slot(self) -> float | None:
        with self._lock:
            slot = self.start + self._next / self.rate
            if slot >= self.end:
                return None
            self._next += 1
            return slot


@dataclass(frozen=True)
class Plan:
    """Validated command-line options."""

    target: Target
    target_url: str
    rate: float
    duration: float
    concurrency: int
    report_every: float
    timeout: float
    json_out: str | None
    seed: int | None


def worker(
    index: int, run_id: str, plan: Plan, schedule: Schedule, recorder: Recorder, stop: threading.Event
) -> None:
    """Send at each slot it claims over one keep-alive connection, reconnecting after errors or idling.

    Ids are ``lg-<run>-<worker>-<seq>``: unique across runs even with ``--seed``, which only fixes the mix.
    """
    rng = random.Random(None if plan.seed is None else plan.seed * 1009 + index)
    headers = {"Content-Type": "application/json", "User-Agent": "msgroute-loadgen"}
    conn: http.client.HTTPConnection | None = None
    last_used = 0.0
    seq = 0
    try:
        while not stop.is_set():
            slot = schedule.next_slot()
            if slot is None:
                return
            delay = slot - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            if conn is not None and time.monotonic() - last_used > IDLE_RECONNECT_S:
                conn.close()
                conn = None
            if conn is None:
                conn = plan.target.connect(plan.timeout)
            seq += 1
            body = json.dumps(build_message(rng, f"lg-{run_id}-{index}-{seq}")).encode()
            started = time.perf_counter()
            try:
                conn.request("POST", plan.target.path, body, headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                recorder.error(type(exc).__name__)
                conn.close()
                conn = None
                continue
            latency_ms = (time.perf_counter() - started) * 1000.0
            recorder.response(
                response.status,
                response.getheader("X-Router-Version"),
                response.getheader("X-Msgroute-Pool"),
                latency_ms,
            )
            last_used = time.monotonic()
            if response.will_close:
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, sort_keys=False), flush=True)


def run(plan: Plan, stop: threading.Event) -> dict[str, Any]:
    """Generate the planned traffic, printing period reports; returns the summary (also printed)."""
    recorder = Recorder()
    run_id = uuid.uuid4().hex[:12]
    start = time.monotonic()
    schedule = Schedule(start, plan.rate, plan.duration)
    threads = [
        threading.Thread(
            target=worker, args=(i, run_id, plan, schedule, recorder, stop), name=f"loadgen-{i}", daemon=True
        )
        for i in range(plan.concurrency)
    ]
    for thread in threads:
        thread.start()

    next_report = start + plan.report_every if plan.report_every > 0 else math.inf
    while True:
        now = time.monotonic()
        if now >= next_report:
            emit({"event": "report", "elapsed_s": round(now - start, 3), **recorder.take_period().snapshot()})
            next_report += plan.report_every
            continue
        if stop.is_set() or now >= schedule.end:
            break
        stop.wait(min(next_report, schedule.end) - now)
    stopped_early = stop.is_set()
    stop.set()
    # Requests in flight finish (bounded by the socket timeout) so the summary accounts for every send.
    for thread in threads:
        thread.join(timeout=plan.timeout + 1.0)
    summary = {
        "event": "summary",
        "target": plan.target_url,
        "rate": plan.rate,
        "duration_s": plan.duration,
        "concurrency": plan.concurrency,
        "elapsed_s": round(time.monotonic() - start, 3),
        "stopped_early": stopped_early,
        **recorder.total.snapshot(),
    }
    emit(summary)
    if plan.json_out:
        write_json(plan.json_out, summary)
    return summary


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write atomically so a reader never sees half a summary."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def _bounded(
    kind: Callable[[str], float], low: float, high: float, *, low_inclusive: bool = True
) -> Callable[[str], float]:
    """argparse type that refuses values outside ``low..high``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        too_low = value < low if low_inclusive else value <= low
        if not math.isfinite(value) or too_low or value > high:
            bracket = "[" if low_inclusive else "("
            raise argparse.ArgumentTypeError(f"must be in {bracket}{low:g}, {high:g}], got {text}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m router_app.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="base URL of the router (or nginx in front of it)")
    parser.add_argument(
        "--rate",
        type=_bounded(float, 0, MAX_RATE, low_inclusive=False),
        required=True,
        help="requests per second",
    )
    parser.add_argument(
        "--duration",
        type=_bounded(float, 0, MAX_DURATION_S, low_inclusive=False),
        required=True,
        help=f"seconds, at most {MAX_DURATION_S:g}",
    )
    parser.add_argument(
        "--concurrency",
        type=_bounded(int, 1, MAX_CONCURRENCY),
        default=8,
        help="worker threads, each with one keep-alive connection",
    )
    parser.add_argument(
        "--report-every",
        type=_bounded(float, 0, MAX_DURATION_S),
        default=5.0,
        help="seconds between report lines; 0 prints only the summary",
    )
    parser.add_argument(
        "--timeout",
        type=_bounded(float, 0, 60, low_inclusive=False),
        default=5.0,
        help="socket timeout per request, seconds",
    )
    parser.add_argument("--json-out", help="also write the summary to this file")
    parser.add_argument("--seed", type=int, help="seed for the message mix (default: random)")
    args = parser.parse_args(argv)
    try:
        target = parse_target(args.target)
    except ValueError as exc:
        parser.error(str(exc))
    return Plan(
        target=target,
        target_url=args.target,
        rate=args.rate,
        duration=args.duration,
        concurrency=args.concurrency,
        report_every=args.report_every,
        timeout=args.timeout,
        json_out=args.json_out,
        seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    stop = threading.Event()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run(plan, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
