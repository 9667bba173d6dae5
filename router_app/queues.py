"""Per-class bounded priority queues with TTL between admission and dispatch.

Admission reserves a slot before anything else (so a full queue answers 429 before any side effect) and
commits the message once its idempotency claim succeeded. Within a class the lowest priority number leaves
first, FIFO among equals; between classes, dispatch takes turns by weight so no class starves. A message whose
TTL passes while queued is removed and reported through ``on_expired`` (a metric and a log line): nothing
leaves a queue silently.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from router_app.tracing import trace_id_of


@dataclass(slots=True)
class Envelope:
    """A message accepted for dispatch: the sender's bytes are delivered as they came."""

    message_id: str
    classification: str
    priority: int
    destination: str
    body: bytes
    deadline: float
    enqueued: float
    request_id: str = ""
    traceparent: str = ""  # the router's span, sent to the destination
    attempts: int = 0
    tried: list[str] = field(default_factory=list)
    stream: str = ""  # durable queue only: where the entry is, to acknowledge it
    entry_id: str = ""

    def log_fields(self) -> dict[str, object]:
        """What every log line about this message carries."""
        return {
            "message_id": self.message_id,
            "trace_id": trace_id_of(self.traceparent),
            "message_class": self.classification,
            "request_id": self.request_id,
        }


class ClassQueue:
    """One class: a heap by (priority, arrival), at most ``capacity`` messages including reservations."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.reserved = 0
        self._heap: list[tuple[int, int, Envelope]] = []
        self._seq = itertools.count()
        self.expired = 0
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._heap)

    def try_reserve(self) -> bool:
        """Hold a slot for a message about to be committed; ``False`` (and counted) when full."""
        if len(self._heap) + self.reserved >= self.capacity:
            self.rejected += 1
            return False
        self.reserved += 1
        return True

    def release(self) -> None:
        """Give back an unused reservation (the message turned out to be a duplicate, or failed)."""
        self.reserved -= 1

    def commit(self, envelope: Envelope) -> None:
        """Turn a reservation into a queued message."""
        self.reserved -= 1
        heapq.heappush(self._heap, (envelope.priority, next(self._seq), envelope))

    def pop(self, now: float, on_expired: Callable[[Envelope], None]) -> Envelope | None:
        """Best live message, dropping (and reporting) expired ones met on the way."""
        while self._heap:
            envelope = heapq.heappop(self._heap)[2]
            if envelope.deadline > now:
                return envelope
            self.expired += 1
            on_expired(envelope)
        return None

    def sweep(self, now: float, on_expired: Callable[[Envelope], None]) -> int:
        """Remove every expired message now (not only at the head), so depth tells the truth."""
        if not self._heap:
            return 0
        live = [item for item in self._heap if item[2].deadline > now]
        gone = len(self._heap) - len(live)
        if gone:
            for item in self._heap:
                if item[2].deadline <= now:
                    on_expired(item[2])
            heapq.heapify(live)
            self._heap = live
            self.expired += gone
        return gone

    def drain_all(self) -> list[Envelope]:
        """Everything still queued, best first (at shutdown, after the drain deadline)."""
        items = [heapq.heappop(self._heap)[2] for _ in range(len(self._heap))]
        return items


def weighted_schedule(weights: Mapping[str, int]) -> list[str]:
    """Smooth weighted round-robin order for one cycle: {a: 3, b: 1} -> [a, a, b, a] (nginx's algorithm)."""
    current = dict.fromkeys(weights, 0)
    total = sum(weights.values())
    order = []
    for _ in range(total):
        for name, weight in weights.items():
            current[name] += weight
        best = max(current, key=lambda n: current[n])
        current[best] -= total
        order.append(best)
    return order


def retry_after_s(depth: int, drain_per_s: float, low: int = 1, high: int = 30) -> int:
    """Seconds a rejected sender should wait: time to drain the queue at the recent rate, clamped."""
    if drain_per_s <= 0:
        return high if depth else low
    return max(low, min(high, math.ceil(depth / drain_per_s)))


class QueueSet:
    """All class queues plus the waiting dispatch workers."""

    def __init__(
        self,
        capacities: Mapping[str, int],
        weights: Mapping[str, int],
        on_expired: Callable[[Envelope], None],
    ) -> None:
        self.queues = {name: ClassQueue(name, capacity) for name, capacity in capacities.items()}
        self._order = weighted_schedule({name: weights.get(name, 1) for name in self.queues})
        self._turn = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._on_expired = on_expired
        self.popped = 0
        self.drain_per_s = 0.0
        self._popped_at_last_sweep = 0

    def __getitem__(self, name: str) -> ClassQueue:
        return self.queues[name]

    @property
    def depth(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def commit(self, queue: ClassQueue, envelope: Envelope) -> None:
        queue.commit(envelope)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def put(self, envelope: Envelope) -> None:
        """Queue a message without a capacity check (the durable queue's buffer: Redis holds the bound)."""
        queue = self.queues[envelope.classification]
        queue.reserved += 1
        self.commit(queue, envelope)

    def pop_next(self, now: float) -> Envelope | None:
        """Next message by weighted turns, skipping empty classes."""
        order = self._order
        for step in range(len(order)):
            queue = self.queues[order[(self._turn + step) % len(order)]]
            if queue:
                envelope = queue.pop(now, self._on_expired)
                if envelope is not None:
                    self._turn = (self._turn + step + 1) % len(order)
                    self.popped += 1
                    return envelope
        return None

    async def get(self, clock: Callable[[], float]) -> Envelope:
        """Wait for the next live message."""
        loop = asyncio.get_running_loop()
        while True:
            envelope = self.pop_next(clock())
            if envelope is not None:
                return envelope
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise

    def sweep(self, now: float, interval_s: float) -> int:
        """Expire what is due and update the drain-rate estimate (EWMA over sweeps)."""
        gone = sum(q.sweep(now, self._on_expired) for q in self.queues.values())
        rate = (self.popped - self._popped_at_last_sweep) / interval_s if interval_s > 0 else 0.0
        self._popped_at_last_sweep = self.popped
        self.drain_per_s = rate if self.drain_per_s == 0 else 0.3 * rate + 0.7 * self.drain_per_s
        return gone
