"""Delivery of queued messages to destinations over HTTP, guarded by one circuit breaker per destination.

Workers take messages from the class queues (weighted turns), send each to the destination chosen at
admission if its breaker allows, otherwise to the least-loaded destination that is available, and retry on
another destination up to ``max_attempts``. Every message ends in exactly one counted outcome: delivered,
refused (a 4xx from the destination: retrying would not help), failed (attempts used up), expired (TTL) or
abandoned (still queued at the end of the shutdown drain); the last four are also logged with the message id
and trace id.

With the durable queue (``feed.py``) the messages come from Redis, each final outcome is acknowledged there,
and at the end of the shutdown drain nothing is abandoned: what is left is handed back to the pool (released).
Every delivery carries the message id as ``Idempotency-Key`` and the router's ``traceparent``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from router_app import metrics
from router_app.breaker import CircuitBreaker
from router_app.feed import DurableFeed
from router_app.httpclient import DeliveryError, HttpDestination, InvalidHeader
from router_app.logs import RateLimitedLog, get_logger
from router_app.queues import Envelope, QueueSet
from router_app.strategy import RoutingStrategy

# How long a worker waits before looking again when every breaker is open.
ALL_OPEN_POLL_S = 0.25


class Dispatcher:
    def __init__(
        self,
        queues: QueueSet,
        strategy: RoutingStrategy,
        breakers: Mapping[str, CircuitBreaker],
        clients: Mapping[str, HttpDestination],
        concurrency: int,
        max_attempts: int,
        version: str,
        clock: Callable[[], float] = time.monotonic,
        feed: DurableFeed | None = None,
    ) -> None:
        self.queues = queues
        self.feed = feed
        self.strategy = strategy
        self.breakers = breakers
        self.clients = clients
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.clock = clock
        self._version = version.encode()
        self._workers: list[asyncio.Task[None]] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._log = get_logger()
        self._problems = RateLimitedLog(self._log, interval_s=1.0)
        self.busy = 0
        self.abandoned = 0
        self._closing = False
        self._delivering: set[asyncio.Task[None]] = set()
        self._cancelled: list[Envelope] = []  # durable queue: cancelled in flight, handed back at close

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"dispatch-{i}") for i in range(self.concurrency)
        ]
        self._sweeper = asyncio.create_task(self._sweep(), name="queue-sweeper")
        if self.feed is not None:
            self.feed.start()

    async def drain(self, timeout_s: float) -> int:
        """Deliver until the queues are empty or ``timeout_s`` passed; abandon (and report) the rest.

        At the deadline no new delivery starts, but one already sent gets up to one attempt timeout to end
        with its real outcome: cancelling it mid-request would report "abandoned" for a message the
        destination may already hold."""
        deadline = self.clock() + timeout_s
        if self.feed is not None:
            self.feed.stop_reading()
        while (self.queues.depth or self.busy) and self.clock() < deadline:
            await asyncio.sleep(0.02)
        self._closing = True
        in_flight = set(self._delivering)
        idle = [task for task in self._workers if task not in in_flight]
        for task in [*idle, *([self._sweeper] if self._sweeper else [])]:
            task.cancel()
        if in_flight:
            grace = max((client.timeout_s for client in self.clients.values()), default=0.0)
            await asyncio.wait(in_flight, timeout=grace)
        tasks = [*self._workers, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        leftover = [e for queue in self.queues.queues.values() for e in queue.drain_all()]
        for client in self.clients.values():
            client.close()
        if self.feed is not None:
            await self.feed.close([*leftover, *self._cancelled])
            return 0
        for envelope in leftover:
            self.abandoned += 1
            self._finish(envelope, "abandoned", "still queued when the shutdown drain ended")
        if self.abandoned:
            self._log.error("messages abandoned at shutdown", extra={"fields": {"count": self.abandoned}})
        return self.abandoned

    # -- workers ---------------------------------------------------------------------------------------------

    async def _sweep(self, interval_s: float = 0.5) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.queues.sweep(self.clock(), interval_s)

    def on_expired(self, envelope: Envelope) -> None:
        """Called by the queues for a message whose TTL ran out while it waited."""
        self.strategy.unassign(envelope.destination)
        metrics.QUEUE_EXPIRED.labels(envelope.classification).inc()
        self._finish(envelope, "expired", "TTL ran out before dispatch")

    async def _work(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self._closing:
            envelope = await self.queues.get(self.clock)
            self.strategy.unassign(envelope.destination)
            if self.feed is not None and not self.feed.holds(envelope):
                continue  # another router took it over while it waited here
            self.busy += 1
            self._delivering.add(task)
            try:
                await self.deliver(envelope)
            except asyncio.CancelledError:
                if self.feed is not None:
                    self._cancelled.append(envelope)  # the destination may have it: its id says so
                    raise
                self.abandoned += 1
                self._finish(
                    envelope,
                    "abandoned",
                    "delivery in flight was cancelled at the end of the shutdown drain; "
                    "the destination may have received it",
                )
                raise
            finally:
                self.busy -= 1
                self._delivering.discard(task)

    def _pick(self, envelope: Envelope) -> str | None:
        """The assigned destination if it may be tried, else the least-loaded available one not yet tried."""
        preferred = envelope.destination
        if preferred not in envelope.tried and self.breakers[preferred].allow():
            return preferred
        candidates = [
            name
            for name in self.strategy.names
            if name not in envelope.tried and self.breakers[name].available()
        ]
        if not candidates:
            candidates = [name for name in self.strategy.names if self.breakers[name].available()]
        while candidates:
            name = self.strategy.least_loaded(candidates)
            if self.breakers[name].allow():
                return name
            candidates.remove(name)
        return None

    async def deliver(self, envelope: Envelope) -> None:
        """Try until delivered, refused, out of attempts or expired."""
        while True:
            if self.clock() >= envelope.deadline:
                self._finish(envelope, "expired", "TTL ran out during delivery attempts")
                return
            if self._closing and envelope.attempts:
                if self.feed is not None:
                    self._cancelled.append(envelope)
                    return
                self.abandoned += 1
                self._finish(envelope, "abandoned", "not retried: the shutdown drain ended")
                return
            name = self._pick(envelope)
            if name is None:  # every breaker is open: wait for one to half-open, within the TTL
                wait = min(b.seconds_until_retry() for b in self.breakers.values())
                await asyncio.sleep(
                    min(max(wait, 0.01), ALL_OPEN_POLL_S, max(envelope.deadline - self.clock(), 0))
                )
                continue
            envelope.attempts += 1
            envelope.tried.append(name)
            result = await self._attempt(name, envelope)
            if result == "ok":
                self._finish(envelope, "delivered", "")
                return
            if result == "unsendable":
                self._finish(envelope, "refused", "a header would hold CR, LF or NUL; nothing was sent")
                return
            if result == "refused":
                self._finish(envelope, "refused", f"{name} refused the message")
                return
            if envelope.attempts >= self.max_attempts:
                self._finish(envelope, "failed", f"{envelope.attempts} attempts failed, last on {name}")
                return

    async def _attempt(self, name: str, envelope: Envelope) -> str:
        breaker = self.breakers[name]
        client = self.clients[name]
        message_id = envelope.message_id.encode()
        headers = [
            (b"idempotency-key", message_id),
            (b"x-msgroute-message-id", message_id),
            (b"x-msgroute-class", envelope.classification.encode()),
            (b"x-msgroute-priority", str(envelope.priority).encode()),
            (b"x-msgroute-attempt", str(envelope.attempts).encode()),
            (b"x-msgroute-destination", name.encode()),
            (b"x-router-version", self._version),
        ]
        if envelope.request_id:
            headers.append((b"x-request-id", envelope.request_id.encode()))
        if envelope.traceparent:
            headers.append((b"traceparent", envelope.traceparent.encode()))
        self.strategy.start(name)
        started = self.clock()
        status = 0
        try:
            status, _ = await client.post(envelope.body, headers)
        except InvalidHeader:
            # Nothing was sent: the message itself cannot be written as a request (no destination could
            # take it), so it is not the destination's failure and not worth a retry.
            breaker.abandon()
            self.strategy.cancel(name)
            return "unsendable"
        except DeliveryError as exc:
            self._problems.warning(f"delivery to {name} failed: {exc}", **envelope.log_fields())
        except Exception:  # a bug here must not leak the in-flight count or a half-open probe slot
            self._log.exception(f"delivery to {name} crashed", extra={"fields": envelope.log_fields()})
        except asyncio.CancelledError:
            breaker.abandon()
            self.strategy.finish(name, (self.clock() - started) * 1000)
            raise
        elapsed = self.clock() - started
        metrics.DISPATCH_DURATION.labels(name).observe(elapsed)
        if 200 <= status < 300:
            self.strategy.finish(name, elapsed * 1000)
            breaker.record_success()
            metrics.DISPATCH_ATTEMPTS.labels(name, "ok").inc()
            return "ok"
        if 400 <= status < 500 and status not in (408, 429):
            # The destination works but does not want this message: not its fault, not worth a retry.
            self.strategy.finish(name, elapsed * 1000)
            breaker.record_success()
            metrics.DISPATCH_ATTEMPTS.labels(name, "refused").inc()
            return "refused"
        # Failures count at least the timeout as latency: the prediction steers away from a bad destination.
        self.strategy.finish(name, max(elapsed, client.timeout_s) * 1000)
        breaker.record_failure()
        metrics.DISPATCH_ATTEMPTS.labels(name, "error").inc()
        if status:
            self._problems.warning(f"delivery to {name} answered {status}", **envelope.log_fields())
        return "error"

    def _finish(self, envelope: Envelope, outcome: str, why: str) -> None:
        metrics.DELIVERIES.labels(envelope.classification, outcome).inc()
        if self.feed is not None:
            self.feed.done(envelope)
        if outcome == "delivered":
            return
        fields = {**envelope.log_fields(), "attempts": envelope.attempts, "outcome": outcome}
        if outcome == "abandoned":
            # Once, at shutdown, and the last word on these messages: every id is logged, never held back.
            self._log.error(f"message {outcome}: {why}", extra={"fields": fields})
        else:
            self._problems.error(f"message {outcome}: {why}", **fields)
