"""The routing engine: classify, decide, admit (idempotency + queue) and hand over to dispatch; no HTTP here.

Order of admission for live traffic, chosen so that nothing is half-done when a step says no:

1. classify (pure) and apply injected faults;
2. if every destination's breaker is open: 503 with Retry-After, nothing stored;
3. reserve a slot in the class queue: full means 429 with Retry-After, nothing stored (unless the id is
   already known: then it is a duplicate like in step 4);
4. claim the message id in the idempotency store with the decision: an earlier claim means a duplicate,
   answered with the earlier decision, and the reserved slot is given back;
5. count the message against its destination (pending) and commit it to the queue; dispatch delivers it.

Anything that fails after step 3 started (a bug, a store error, a cancelled request) gives back, in reverse
order, everything taken so far — the pending count, the claim (``release``: only if it is still ours), the
queue slot — through one ``Reservations`` list: a failed admission leaves no trace, and the same id is new.

With the durable queue (``ROUTER_QUEUE_URL``) steps 3-5 are one atomic script in Redis (``streams.py``): the
id is claimed and the message appended together, or neither (duplicate, or the class's streams full: 429), so
there is nothing to give back and a crash between the steps cannot lose a message whose id was claimed.

Mirrored traffic (shadow mode or ``X-Msgroute-Mirrored: 1``) stops after the decision: it only *reads* the
idempotency store and never queues, so it has no side effects. Without destination URLs (decide-only) the
decision is claimed and answered but nothing is queued.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router_app import metrics
from router_app.breaker import STATE_NAMES, CircuitBreaker
from router_app.classifier import Classification, RuleSet, classify, load_rules
from router_app.config import ConfigError, Settings
from router_app.dispatch import Dispatcher
from router_app.faults import FaultInjector
from router_app.feed import DurableFeed
from router_app.flags import FeatureFlags
from router_app.httpclient import HttpDestination
from router_app.idempotency import IdempotencyStore, MemoryStore, RedisStore, StoreUnavailable
from router_app.logs import get_logger
from router_app.models import RouteRequest
from router_app.queues import ClassQueue, Envelope, QueueSet, retry_after_s
from router_app.strategy import RoutingStrategy
from router_app.streams import QueueUnavailable, StreamQueue, consumer_name


@dataclass(slots=True)
class Answer:
    """What the HTTP layer sends: a status and a JSON-able body, plus what to count."""

    status: int
    body: dict[str, Any]
    outcome: str
    message_class: str
    retry_after: int | None = None


def check_class_names(settings: Settings, classes: tuple[str, ...]) -> None:
    """Per-class settings must name classes the rules declare (a typo would silently do nothing)."""
    for field_name, variable in (
        ("queue_capacity_by_class", "ROUTER_QUEUE_CAPACITY_BY_CLASS"),
        ("queue_weight_by_class", "ROUTER_QUEUE_WEIGHT_BY_CLASS"),
        ("fault_latency_ms_by_class", "ROUTER_FAULT_LATENCY_MS_BY_CLASS"),
        ("fault_error_rate_by_class", "ROUTER_FAULT_ERROR_RATE_BY_CLASS"),
    ):
        unknown = sorted(set(getattr(settings, field_name)) - set(classes))
        if unknown:
            raise ConfigError(
                variable, f"unknown class(es) {', '.join(unknown)}; the rules declare {list(classes)}"
            )


def build_store(settings: Settings) -> IdempotencyStore:
    """In memory, or in Redis: ``ROUTER_REDIS_URL``, or the durable queue's (one Redis: claim and enqueue are
    one atomic step there)."""
    url = settings.redis_url or (settings.queue_url if settings.durable else None)
    if url:
        return RedisStore(
            url,
            settings.idempotency_window_s,
            settings.redis_key_prefix,
            settings.redis_timeout_s,
        )
    return MemoryStore(settings.idempotency_window_s, settings.idempotency_max_entries)


class RoutingEngine:
    """One per process, on one event loop: no locking anywhere."""

    def __init__(
        self,
        settings: Settings,
        rules: RuleSet | None = None,
        store: IdempotencyStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.rules = rules if rules is not None else load_rules(settings.rules_file)
        check_class_names(settings, self.rules.classes)
        try:
            self.flags = FeatureFlags(settings.flags)
        except ValueError as exc:
            raise ConfigError("ROUTER_FLAGS", str(exc)) from None
        self.clock = clock
        self.version = settings.version
        self.mode = settings.mode
        self.dispatching = settings.dispatching
        self.strategy = RoutingStrategy(
            settings.destinations,
            settings.routing_ewma_alpha,
            settings.routing_latency_weight,
            settings.routing_load_weight,
        )
        self.breakers = {
            name: CircuitBreaker(
                name,
                settings.breaker_failure_threshold,
                settings.breaker_recovery_s,
                clock,
                on_change=self._breaker_changed,
            )
            for name in settings.destinations
        }
        self.capacities = {
            c: settings.queue_capacity_by_class.get(c, settings.queue_capacity) for c in self.rules.classes
        }
        self.durable: StreamQueue | None = None
        if settings.durable:
            assert settings.queue_url is not None
            self.durable = StreamQueue(
                settings.queue_url,
                group=settings.queue_group,
                prefix=settings.queue_stream_prefix,
                consumer=settings.queue_consumer or consumer_name(),
                capacities=self.capacities,
                claim_idle_ms=settings.queue_claim_idle_ms,
                timeout_s=settings.redis_timeout_s,
                idempotency_prefix=settings.redis_key_prefix,
                idempotency_window_s=settings.idempotency_window_s,
            )
        # With the durable queue this is only the buffer of what this router read: Redis holds the bound.
        self.queues = QueueSet(
            self.capacities if self.durable is None else dict.fromkeys(self.capacities, sys.maxsize),
            {c: settings.queue_weight_by_class.get(c, 1) for c in self.rules.classes},
            on_expired=self._expired,
        )
        self.store = store if store is not None else build_store(settings)
        self.faults = FaultInjector.from_settings(settings)
        self.dispatcher: Dispatcher | None = None
        self.feed: DurableFeed | None = None
        if self.durable is not None:
            # Twice the workers: each has the next message at hand when it finishes one, no Redis round trip.
            prefetch = 2 * settings.dispatch_concurrency
            self.feed = DurableFeed(self.durable, self.queues, self.strategy, prefetch, clock)
        if self.dispatching:
            self.dispatcher = Dispatcher(
                self.queues,
                self.strategy,
                self.breakers,
                {
                    n: HttpDestination(u, settings.dispatch_timeout_s)
                    for n, u in settings.destination_urls.items()
                },
                settings.dispatch_concurrency,
                settings.dispatch_max_attempts,
                settings.version,
                clock,
                self.feed,
            )
        self._default_ttl_s = settings.default_ttl_ms / 1000
        self._max_ttl_s = settings.max_ttl_ms / 1000
        self._log = get_logger()
        self._export_metrics()

    # -- metrics and state -----------------------------------------------------------------------------------

    def _export_metrics(self) -> None:
        metrics.declare_classes(self.rules.classes)
        for gauge in (
            metrics.QUEUE_DEPTH,
            metrics.QUEUE_CAPACITY,
            metrics.BREAKER_STATE,
            metrics.DESTINATION_IN_FLIGHT,
            metrics.DESTINATION_PENDING,
            metrics.DESTINATION_LATENCY,
        ):
            gauge.clear()  # one engine per process; tests build several, each exports only its own series
        feed = self.feed
        for name, queue in self.queues.queues.items():
            if feed is None:
                metrics.QUEUE_DEPTH.labels(name).set_function(queue.__len__)
            else:  # the pool's depth in Redis, as last read (every 0.5 s at most)
                metrics.QUEUE_DEPTH.labels(name).set_function(lambda name=name: feed.depth.get(name, 0))
            metrics.QUEUE_CAPACITY.labels(name).set(self.capacities[name])
        for name, breaker in self.breakers.items():
            metrics.BREAKER_STATE.labels(name).set(breaker.state)
            load = self.strategy.loads[name]
            metrics.DESTINATION_IN_FLIGHT.labels(name).set_function(lambda load=load: load.in_flight)
            metrics.DESTINATION_PENDING.labels(name).set_function(lambda load=load: load.pending)
            metrics.DESTINATION_LATENCY.labels(name).set_function(lambda load=load: load.ewma_ms / 1000)
        store = self.store
        metrics.IDEMPOTENCY_ENTRIES.set_function(lambda: len(store) if isinstance(store, MemoryStore) else 0)
        for flag, percent in self.flags.percents.items():
            metrics.FEATURE_FLAG_PERCENT.labels(flag).set(percent)
        faults = self.faults
        metrics.FAULT_INJECTION.set_function(lambda: 1 if faults.active else 0)

    def _breaker_changed(self, name: str, old: int, new: int) -> None:
        metrics.BREAKER_STATE.labels(name).set(new)
        metrics.BREAKER_TRANSITIONS.labels(name, STATE_NAMES[new]).inc()
        self._log.warning(
            f"breaker for {name} is {STATE_NAMES[new]}",
            extra={"fields": {"destination": name, "from": STATE_NAMES[old], "to": STATE_NAMES[new]}},
        )

    def _expired(self, envelope: Envelope) -> None:
        if self.dispatcher is not None:
            self.dispatcher.on_expired(envelope)

    async def start(self) -> None:
        await self.store.start()
        if self.durable is not None:
            await self.durable.start()
        if self.dispatcher is not None:
            self.dispatcher.start()

    async def stop(self, drain_timeout_s: float) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.drain(drain_timeout_s)
        await self.store.close()

    def describe(self) -> dict[str, Any]:
        return {
            "dispatching": self.dispatching,
            "breakers": {name: b.describe() for name, b in self.breakers.items()},
            "destinations": self.strategy.describe(),
            "queues": {
                name: {
                    "depth": len(q) if self.feed is None else self.feed.depth.get(name, 0),
                    "capacity": self.capacities[name],
                    "expired": q.expired,
                    "rejected": q.rejected,
                }
                for name, q in self.queues.queues.items()
            },
            "durable_queue": self.feed.describe() if self.feed is not None else None,
            "idempotency": self.store.describe(),
            "flags": self.flags.percents,
            "faults": self.faults.describe(),
        }

    # -- decisions -------------------------------------------------------------------------------------------

    def classify(self, message: RouteRequest) -> Classification:
        return classify(
            self.rules, message.type, message.source, message.priority, message.metadata, message.payload
        )

    def _choose(self, message_id: str, candidates: tuple[str, ...] | list[str]) -> tuple[str, str]:
        """Destination and the strategy that chose it (the feature flags pick the strategy per message)."""
        if self.flags.enabled("least_loaded", message_id):
            predictive = self.flags.enabled("predictive_load", message_id)
            return self.strategy.least_loaded(candidates, predictive), "least_loaded"
        return self.strategy.round_robin(candidates), "round_robin"

    def _decision(
        self, message: RouteRequest, c: Classification, dest: str, strategy: str, outcome: str
    ) -> dict:
        return {
            "message_id": message.id,
            "classification": c.classification,
            "priority": c.priority,
            "queue": c.queue,
            "destination": dest,
            "engine_version": self.version,
            "mode": self.mode,
            "rule": c.rule,
            "explanation": c.explanation,
            "strategy": strategy,
            "outcome": outcome,
        }

    def decide(self, message: RouteRequest) -> dict[str, Any]:
        """The decision alone, without admission (pure apart from the round-robin position)."""
        c = self.classify(message)
        dest, strategy = self._choose(message.id, self.strategy.names)
        return self._decision(message, c, dest, strategy, "decided")

    @staticmethod
    def _duplicate(previous: dict[str, Any], c: Classification) -> Answer:
        return Answer(200, {**previous, "outcome": "duplicate"}, "duplicate", c.classification)

    def _ttl_s(self, message: RouteRequest) -> float:
        ttl_ms = message.ttl_ms
        return self._default_ttl_s if not ttl_ms else min(ttl_ms / 1000, self._max_ttl_s)

    async def submit(
        self, message: RouteRequest, body: bytes, mirrored: bool, request_id: str = "", traceparent: str = ""
    ) -> Answer:
        """Route one message (see the module docstring for the order of steps)."""
        c = self.classify(message)
        if self.faults.active and await self.faults.apply(c.classification):
            return Answer(503, {"detail": "fault injected"}, "fault", c.classification)
        try:
            if mirrored:
                return await self._shadow(message, c)
            if not self.dispatching:
                return await self._decide_only(message, c)
            if self.durable is not None:
                return await self._admit_durable(message, c, body, request_id, traceparent)
            return await self._admit(message, c, body, request_id, traceparent)
        except QueueUnavailable:
            metrics.QUEUE_ERRORS.inc()
            return Answer(
                503, {"detail": "durable queue unavailable"}, "unavailable", c.classification, retry_after=1
            )
        except StoreUnavailable:
            metrics.IDEMPOTENCY_ERRORS.inc()
            return Answer(
                503,
                {"detail": "idempotency store unavailable"},
                "unavailable",
                c.classification,
                retry_after=1,
            )

    async def _shadow(self, message: RouteRequest, c: Classification) -> Answer:
        try:
            previous = await self.store.lookup(message.id)
        except StoreUnavailable:
            previous = None  # a shadow answer is discarded anyway; a store outage must not fail it
        if previous is not None:
            return self._duplicate(previous, c)
        dest, strategy = self._choose(message.id, self.strategy.names)
        return Answer(200, self._decision(message, c, dest, strategy, "shadow"), "shadow", c.classification)

    async def _decide_only(self, message: RouteRequest, c: Classification) -> Answer:
        dest, strategy = self._choose(message.id, self.strategy.names)
        decision = self._decision(message, c, dest, strategy, "decided")
        previous = await self.store.claim(message.id, decision)
        if previous is not None:
            return self._duplicate(previous, c)
        return Answer(200, decision, "decided", c.classification)

    def _unavailable(self, c: Classification) -> Answer:
        wait = min(b.seconds_until_retry() for b in self.breakers.values())
        retry = max(1, math.ceil(wait))
        detail = "every destination's circuit breaker is open"
        return Answer(503, {"detail": detail, "retry_after_s": retry}, "unavailable", c.classification, retry)

    def _rejected(self, queue: ClassQueue, c: Classification, depth: int | None = None) -> Answer:
        retry = retry_after_s(len(queue) if depth is None else depth, self.queues.drain_per_s)
        metrics.QUEUE_REJECTED.labels(queue.name).inc()
        detail = f"queue {queue.name!r} is full ({self.capacities[queue.name]} messages); retry later"
        return Answer(429, {"detail": detail, "retry_after_s": retry}, "rejected", c.classification, retry)

    async def _admit_durable(
        self, message: RouteRequest, c: Classification, body: bytes, request_id: str, traceparent: str
    ) -> Answer:
        """One atomic step in Redis: claim the id and append the message, or neither."""
        assert self.durable is not None
        candidates = [name for name in self.strategy.names if self.breakers[name].available()]
        if not candidates:
            return self._unavailable(c)
        dest, strategy = self._choose(message.id, candidates)
        decision = self._decision(message, c, dest, strategy, "queued")
        envelope = Envelope(
            message.id, c.classification, c.priority, dest, body, 0.0, 0.0, request_id, traceparent
        )
        admission = await self.durable.admit(envelope, decision, self._ttl_s(message))
        if admission.outcome == "duplicate":
            assert admission.previous is not None
            return self._duplicate(admission.previous, c)
        if admission.outcome == "full":
            queue = self.queues[c.queue]
            queue.rejected += 1
            return self._rejected(queue, c, admission.depth)
        return Answer(200, decision, "queued", c.classification)

    async def _admit(
        self, message: RouteRequest, c: Classification, body: bytes, request_id: str, traceparent: str = ""
    ) -> Answer:
        candidates = [name for name in self.strategy.names if self.breakers[name].available()]
        if not candidates:
            return self._unavailable(c)
        queue = self.queues[c.queue]
        if not queue.try_reserve():
            # A full queue must not bounce a retry of a message it already holds: look before refusing.
            try:
                previous = await self.store.lookup(message.id)
            except StoreUnavailable:
                previous = None
            if previous is not None:
                return self._duplicate(previous, c)
            return self._rejected(queue, c)
        # From here on every step that takes something (the queue slot, the id's claim, the destination's
        # pending count) registers how to give it back; any failure before the commit undoes them all, so a
        # refused or crashed admission leaves the engine exactly as it found it.
        undo = Reservations()
        undo.add(queue.release)
        try:
            dest, strategy = self._choose(message.id, candidates)
            decision = self._decision(message, c, dest, strategy, "queued")
            previous = await self.store.claim(message.id, decision)
            if previous is not None:
                await undo.give_back()
                return self._duplicate(previous, c)
            undo.add(self.store.release, message.id, decision)
            self.strategy.assign(dest)
            undo.add(self.strategy.unassign, dest)
            now = self.clock()
            envelope = Envelope(
                message.id,
                c.classification,
                c.priority,
                dest,
                body,
                now + self._ttl_s(message),
                now,
                request_id,
                traceparent,
            )
            self.queues.commit(queue, envelope)
        except BaseException:
            await undo.give_back()
            raise
        return Answer(200, decision, "queued", c.classification)


class Reservations:
    """What an admission took so far, given back in reverse order if it cannot finish."""

    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def add(self, give_back: Callable[..., Any], *args: Any) -> None:
        self._steps.append((give_back, args))

    async def give_back(self) -> None:
        log = get_logger()
        while self._steps:
            step, args = self._steps.pop()
            try:
                result = step(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one step failing to undo must not stop the others
                log.exception(f"could not give back {getattr(step, '__qualname__', step)}")
