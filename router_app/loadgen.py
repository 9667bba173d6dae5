"""Bounded synthetic traffic for ``/v1/route``: the project's one load client.

Command line: ``python -m router_app.loadgen --target URL --rate R --duration S [--retry]`` (the rehearsal's
loadgen container, started by roles/loadgen, and the integration tests). Output is one JSON object per line:
a ``report`` per period, then a ``summary``. Library: ``Load`` (the traffic suite and bench/traffic).

Standard library only (threads and keep-alive ``http.client`` connections) so it runs anywhere the service
runs, the container image included. It sends only to its target, never follows redirects, sends at most
``rate * duration`` (or ``total``) requests, duration capped at one hour, and stops by itself, or on
SIGTERM/SIGINT, always printing a final summary.

Retries. By default a request that fails is counted and never sent again: the client a reload hurts, which is
what the traffic suite needs. With ``retry=True`` (``--retry``) a request whose *reused* keep-alive connection
was closed before any byte of the answer arrived (the server had closed it while idle, or was reloading) is
sent once more on a new connection, as browsers and urllib3 do; every message carries a unique id and the
router is idempotent by id, so a resend never routes a message twice. Either way such closes are counted in
``closed_before_response``, and resends in ``retried``.

Percentiles are nearest-rank (see ``percentile``): always an observed latency, never interpolated.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

MAX_DURATION_S = 3600.0
MAX_RATE = 20_000.0
MAX_CONCURRENCY = 512
# uvicorn closes idle keep-alive connections after 5 s; reconnecting before that avoids most server-side idle
# closes at low rates (a close that still happens is counted in closed_before_response).
IDLE_RECONNECT_S = 2.0
NO_HEADER = "<none>"
ROUTE_PATH = "/v1/route"
MESSAGE_TYPES = ("telemetry", "status", "report", "heartbeat", "alert", "command", "escalation")
TYPE_WEIGHTS = (40, 20, 10, 10, 10, 6, 4)
SOURCES = ("sensor-gateway", "ops-console", "billing", "fleet-tracker", "scheduler")
# Raised while sending a request or reading the status line when the peer had closed the connection.
CLOSED_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)

MessageFactory = Callable[[random.Random, str], dict[str, Any]]
CookieFactory = Callable[[int], str | None]


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
    """Nearest-rank percentile of ascending ``sorted_values``; ``None`` without data.

    The value at rank ``ceil(q / 100 * n)`` (at least 1): always an observed value, never interpolated, so
    ``q = 100`` is the maximum, ``q = 0`` the minimum, and one sample is every percentile.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Tally:
    """What the clients saw over one period (or the whole run)."""

    by_status: Counter[str] = field(default_factory=Counter)
    by_version: Counter[str] = field(default_factory=Counter)
    by_pool: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: array = field(default_factory=lambda: array("d"))
    # (cookie, pool that answered) for every request sent with a Cookie header (sticky split checks)
    cookie_pools: list[tuple[str, str]] = field(default_factory=list)
    closed_before_response: int = 0
    retried: int = 0

    def add_response(
        self, status: int, version: str | None, pool: str | None, latency_ms: float, cookie: str | None = None
    ) -> None:
        self.by_status[str(status)] += 1
        self.by_version[version or NO_HEADER] += 1
        if pool is not None:
            self.by_pool[pool] += 1
        self.latencies_ms.append(latency_ms)
        if cookie is not None:
            self.cookie_pools.append((cookie, pool or NO_HEADER))

    def add(self, other: Tally) -> None:
        """Fold ``other`` into this tally (several runs read as one)."""
        for mine, theirs in (
            (self.by_status, other.by_status),
            (self.by_version, other.by_version),
            (self.by_pool, other.by_pool),
            (self.errors, other.errors),
        ):
            mine.update(theirs)
        self.latencies_ms.extend(other.latencies_ms)
        self.cookie_pools.extend(other.cookie_pools)
        self.closed_before_response += other.closed_before_response
        self.retried += other.retried

    @property
    def responses(self) -> int:
        return sum(self.by_status.values())

    @property
    def requests(self) -> int:
        return self.responses + sum(self.errors.values())

    @property
    def failed(self) -> int:
        """Requests without a 2xx answer: connection errors plus non-2xx responses."""
        bad = sum(n for status, n in self.by_status.items() if not status.startswith("2"))
        return sum(self.errors.values()) + bad

    def share(self, pool: str) -> float:
        """Percentage of the answers that named a pool which came from ``pool``."""
        total = sum(self.by_pool.values())
        return 100.0 * self.by_pool[pool] / total if total else 0.0

    def percentile(self, q: float) -> float | None:
        return percentile(sorted(self.latencies_ms), q)

    def snapshot(self) -> dict[str, Any]:
        """Counts add up: ``requests == responses + connection_errors``, ``responses == sum(by_status)``."""
        ordered = sorted(self.latencies_ms)

        def ms(q: float) -> float | None:
            value = percentile(ordered, q)
            return None if value is None else round(value, 3)

        return {
            "requests": self.requests,
            "responses": self.responses,
            "failed": self.failed,
            "by_status": dict(sorted(self.by_status.items())),
            "by_version": dict(sorted(self.by_version.items())),
            "by_pool": dict(sorted(self.by_pool.items())),
            "connection_errors": sum(self.errors.values()),
            "errors_by_kind": dict(sorted(self.errors.items())),
            "closed_before_response": self.closed_before_response,
            "retried": self.retried,
            "latency_ms": {"p50": ms(50), "p95": ms(95), "p99": ms(99), "max": ms(100)},
        }


class Recorder:
    """Thread-safe sink for worker outcomes, keeping the current period and the whole run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = Tally()
        self._period = Tally()

    def response(
        self, status: int, version: str | None, pool: str | None, latency_ms: float, cookie: str | None
    ) -> None:
        with self._lock:
            for tally in (self.total, self._period):
                tally.add_response(status, version, pool, latency_ms, cookie)

    def error(self, kind: str) -> None:
        with self._lock:
            self.total.errors[kind] += 1
            self._period.errors[kind] += 1

    def closed(self, retried: bool) -> None:
        with self._lock:
            for tally in (self.total, self._period):
                tally.closed_before_response += 1
                tally.retried += int(retried)

    def take_period(self) -> Tally:
        with self._lock:
            period, self._period = self._period, Tally()
        return period


class Schedule:
    """Hands out numbered send times until ``end`` or ``total`` slots, however many workers ask.

    Slot ``n`` (from 1) is due at ``start + (n - 1) / rate``; with ``rate`` 0 every slot is due at once (as
    fast as answers come).
    """

    def __init__(self, start: float, rate: float, duration: float, total: int | None = None) -> None:
        self.start = start
        self.end = start + duration
        self.rate = rate
        self.total = total
        self._given = 0
        self._lock = threading.Lock()

    def next_slot(self) -> tuple[int, float] | None:
        with self._lock:
            if self.total is not None and self._given >= self.total:
                return None
            due = self.start + self._given / self.rate if self.rate else time.monotonic()
            if due >= self.end:
                return None
            self._given += 1
            return self._given, due


class RequestFailed(Exception):
    """A request got no complete answer; ``closed_before_response`` says whether it may be sent again."""

    def __init__(self, cause: BaseException, closed_before_response: bool) -> None:
        super().__init__(str(cause))
        self.kind = type(cause).__name__
        self.closed_before_response = closed_before_response


@dataclass(frozen=True)
class Answer:
    status: int
    version: str | None
    pool: str | None


class KeptAlive:
    """One keep-alive connection, opened on demand, that knows whether it has already carried an answer."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._answered = False
        self._last_used = 0.0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Send one request and read the whole answer, or raise ``RequestFailed`` (connection closed)."""
        if self._conn is not None and time.monotonic() - self._last_used > IDLE_RECONNECT_S:
            self.close()
        if self._conn is None:
            self._conn = self.target.connect(self.timeout)
            self._answered = False
        reused = self._answered
        try:
            self._conn.request("POST", self.target.path, body, dict(headers))
            response = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RequestFailed(exc, reused and isinstance(exc, CLOSED_ERRORS)) from exc
        try:
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RequestFailed(exc, closed_before_response=False) from exc
        self._answered = True
        self._last_used = time.monotonic()
        if response.will_close:
            self.close()
        return Answer(
            response.status, response.getheader("X-Router-Version"), response.getheader("X-Msgroute-Pool")
        )


class Load:
    """``concurrency`` kept-alive clients sending ``POST /v1/route`` to ``target``, one request at a time.

    ``rate``: requests per second over all clients (0: as fast as answers come). The run ends after
    ``duration`` seconds or ``total`` requests, whichever comes first, or at ``stop()``. ``retry``: see the
    module docstring. ``cookie(n)``: the Cookie header of the n-th request (sticky split checks). ``message``:
    builds each body from a seeded RNG and a unique id. Message ids are ``lg-<run>-<n>``: unique across runs
    even with ``seed``, which only fixes the mix.
    """

    def __init__(
        self,
        target: str,
        *,
        rate: float = 0.0,
        duration: float = MAX_DURATION_S,
        total: int | None = None,
        concurrency: int = 8,
        timeout: float = 5.0,
        retry: bool = False,
        seed: int | None = None,
        headers: Mapping[str, str] | None = None,
        cookie: CookieFactory | None = None,
        message: MessageFactory = build_message,
    ) -> None:
        if not 0 <= rate <= MAX_RATE:
            raise ValueError(f"rate must be in [0, {MAX_RATE:g}], got {rate}")
        if not 0 < duration <= MAX_DURATION_S:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_S:g}], got {duration}")
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be in [1, {MAX_CONCURRENCY}], got {concurrency}")
        if total is not None and total < 1:
            raise ValueError(f"total must be at least 1, got {total}")
        self.target = parse_target(target)
        self.rate = rate
        self.duration = duration
        self.total = total
        self.concurrency = concurrency
        self.timeout = timeout
        self.retry = retry
        self.seed = seed
        self.headers = {
            "Content-Type": "application/json",
            "User-Agent": "msgroute-loadgen",
            **(headers or {}),
        }
        self.cookie = cookie
        self.message = message
        self.run_id = uuid.uuid4().hex[:12]
        self.recorder = Recorder()
        self.schedule: Schedule | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def tally(self) -> Tally:
        """Everything so far (complete once ``stop()`` or ``wait()`` returned)."""
        return self.recorder.total

    @property
    def started_at(self) -> float:
        """``time.monotonic()`` at ``start()``."""
        assert self.schedule is not None, "start() first"
        return self.schedule.start

    @property
    def ends_at(self) -> float:
        """``time.monotonic()`` at which the schedule runs out."""
        assert self.schedule is not None, "start() first"
        return self.schedule.end

    def start(self) -> Load:
        self.schedule = Schedule(time.monotonic(), self.rate, self.duration, self.total)
        self._threads = [
            threading.Thread(target=self._worker, args=(i,), name=f"loadgen-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Tally:
        """Send nothing more; requests in flight finish (bounded by the socket timeout)."""
        self._stop.set()
        self._join(time.monotonic())
        return self.tally

    def wait(self) -> Tally:
        """Until the schedule runs out (``duration`` or ``total``), then as ``stop()``."""
        self._join(self.ends_at)
        return self.stop()

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _join(self, until: float) -> None:
        # A request may take its timeout twice over when it is resent.
        deadline = until + self.timeout * (2 if self.retry else 1) + 1.0
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _worker(self, index: int) -> None:
        assert self.schedule is not None
        rng = random.Random(None if self.seed is None else self.seed * 1009 + index)
        conn = KeptAlive(self.target, self.timeout)
        try:
            while not self._stop.is_set():
                slot = self.schedule.next_slot()
                if slot is None:
                    return
                n, due = slot
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                self._send(conn, rng, n)
        finally:
            conn.close()

    def _send(self, conn: KeptAlive, rng: random.Random, n: int) -> None:
        headers = dict(self.headers)
        cookie = self.cookie(n) if self.cookie else None
        if cookie:
            headers["Cookie"] = cookie
        body = json.dumps(self.message(rng, f"lg-{self.run_id}-{n}")).encode()
        started = time.perf_counter()
        resends = 1 if self.retry else 0
        while True:
            try:
                answer = conn.post(body, headers)
                break
            except RequestFailed as failure:
                if failure.closed_before_response:
                    self.recorder.closed(retried=resends > 0)
                    if resends > 0:
                        resends -= 1
                        continue
                self.recorder.error(failure.kind)
                return
        latency_ms = (time.perf_counter() - started) * 1000.0
        self.recorder.response(answer.status, answer.version, answer.pool, latency_ms, cookie or None)


def run(target: str, total: int, **options: Any) -> Tally:
    """Send ``total`` requests (as fast as answers come unless ``rate`` is given); what the clients saw."""
    return Load(target, total=total, **options).start().wait()


@dataclass(frozen=True)
class Plan:
    """Validated command-line options."""

    target: str
    rate: float
    duration: float
    concurrency: int
    report_every: float
    timeout: float
    retry: bool
    json_out: str | None
    seed: int | None


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, sort_keys=False), flush=True)


def generate(plan: Plan, stop: threading.Event) -> dict[str, Any]:
    """Generate the planned traffic, printing period reports; returns the summary (also printed)."""
    load = Load(
        plan.target,
        rate=plan.rate,
        duration=plan.duration,
        concurrency=plan.concurrency,
        timeout=plan.timeout,
        retry=plan.retry,
        seed=plan.seed,
    ).start()
    start = load.started_at
    next_report = start + plan.report_every if plan.report_every > 0 else math.inf
    while True:
        now = time.monotonic()
        if now >= next_report:
            emit(
                {
                    "event": "report",
                    "elapsed_s": round(now - start, 3),
                    **load.recorder.take_period().snapshot(),
                }
            )
            next_report += plan.report_every
            continue
        if stop.is_set() or now >= load.ends_at:
            break
        stop.wait(min(next_report, load.ends_at) - now)
    stopped_early = stop.is_set()
    # Requests in flight finish so the summary accounts for every send.
    tally = load.stop()
    summary = {
        "event": "summary",
        "target": plan.target,
        "rate": plan.rate,
        "duration_s": plan.duration,
        "concurrency": plan.concurrency,
        "retry": plan.retry,
        "elapsed_s": round(time.monotonic() - start, 3),
        "stopped_early": stopped_early,
        **tally.snapshot(),
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
    parser.add_argument(
        "--retry",
        action="store_true",
        help="resend once, on a new connection, a request whose reused connection closed before any answer "
        "byte (default: never retry, count it as an error)",
    )
    parser.add_argument("--json-out", help="also write the summary to this file")
    parser.add_argument("--seed", type=int, help="seed for the message mix (default: random)")
    args = parser.parse_args(argv)
    try:
        parse_target(args.target)
    except ValueError as exc:
        parser.error(str(exc))
    return Plan(
        target=args.target,
        rate=args.rate,
        duration=args.duration,
        concurrency=args.concurrency,
        report_every=args.report_every,
        timeout=args.timeout,
        retry=args.retry,
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
    generate(plan, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
