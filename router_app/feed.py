"""Moves entries of the durable queue (``streams.py``) into this process's dispatch heap, and back.

The dispatcher works as with the in-memory queue; the heap only holds what this router has read from Redis
(at most ``prefetch`` entries, buffered or being delivered: they are pending in the group, owned by this
consumer). Three tasks:

- the feeder reads new entries (``XREADGROUP``) whenever there is room;
- the keeper, every ``min(0.5 s, claim_idle / 4)``: re-claims what this router holds so it never looks dead,
  drops what another router took over meanwhile, claims what a dead router left (``XAUTOCLAIM``) and reads
  the stream lengths for the depth gauge and Retry-After; now and then it removes the consumer names of
  routers gone (nothing pending, no read for ten claim times), so a pool that restarts often keeps no pile;
- the acker acknowledges finished entries in batches (``XACK`` + ``XDEL``), only after their final outcome.

An acknowledgement that fails leaves the entry pending: it is claimed again after ``claim_idle`` and
redelivered, and the destination recognises the message id (a counted duplicate, not a second delivery).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from router_app import metrics
from router_app.logs import RateLimitedLog, get_logger
from router_app.queues import Envelope, QueueSet
from router_app.strategy import RoutingStrategy
from router_app.streams import Entry, QueueUnavailable, StreamQueue, envelope_of

RETRY_S = 0.5  # pause after a failed read before trying again
# After a read that did not fill the room, and after each acknowledgement batch, wait this long so that the
# next round trip carries several entries: one XREADGROUP costs the event loop ~0.4 ms of redis-py whether it
# brings 1 entry or 50 (measured on the bench machine), which at 1,000 msg/s one by one would take most of
# a core from the routing answers. It delays deliveries by up to this much, never an answer.
BATCH_S = 0.005


class DurableFeed:
    def __init__(
        self,
        stream: StreamQueue,
        queues: QueueSet,
        strategy: RoutingStrategy,
        prefetch: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.queues = queues
        self.strategy = strategy
        self.prefetch = prefetch
        self.clock = clock
        self.held: dict[tuple[str, str], Envelope] = {}
        self.depth: dict[str, int] = dict.fromkeys(stream.streams, 0)
        self.reading = True
        self._acks: list[tuple[str, str]] = []
        self._space = asyncio.Event()
        self._ack_due = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._log = get_logger()
        self._problems = RateLimitedLog(self._log, interval_s=1.0)
        self.keep_interval_s = min(0.5, stream.claim_idle_ms / 4000)
        self.forget_idle_ms = 10 * stream.claim_idle_ms
        self._next_forget = clock() + self.forget_idle_ms / 2000

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._feed(), name="durable-feeder"),
            asyncio.create_task(self._keep(), name="durable-keeper"),
            asyncio.create_task(self._acker(), name="durable-acker"),
        ]

    # -- called by the dispatcher ----------------------------------------------------------------------------

    def holds(self, envelope: Envelope) -> bool:
        """Still ours to deliver (not taken over by another router while it waited here)."""
        return (envelope.stream, envelope.entry_id) in self.held

    def done(self, envelope: Envelope) -> None:
        """The message reached its final outcome: acknowledge it (soon, batched)."""
        if self.held.pop((envelope.stream, envelope.entry_id), None) is not None:
            self._acks.append((envelope.stream, envelope.entry_id))
            self._ack_due.set()
            self._space.set()

    def stop_reading(self) -> None:
        """Shutdown: take nothing new; what is held is still delivered (and kept alive) until ``close``."""
        self.reading = False
        self._tasks[0].cancel()

    async def close(self, leftover: list[Envelope]) -> int:
        """Acknowledge what finished, hand ``leftover`` back to the pool; return how many went back."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush_acks()
        back = [e for e in leftover if self.held.pop((e.stream, e.entry_id), None)]
        if back:
            try:
                await self.stream.release([(e.stream, e.entry_id) for e in back])
            except QueueUnavailable as exc:
                # Still pending as ours: the pool claims them once they have been idle for claim_idle.
                self._log.error(f"could not hand messages back at once: {exc}")
            for envelope in back:
                metrics.QUEUE_RELEASED.labels(envelope.classification).inc()
                self._log.warning(
                    "message handed back to the durable queue at shutdown: another router delivers it",
                    extra={"fields": {**envelope.log_fields(), "outcome": "released"}},
                )
        await self.stream.close()
        return len(back)

    # -- tasks -----------------------------------------------------------------------------------------------

    def _take(self, entries: list[Entry], claimed: bool) -> None:
        now, wall = self.clock(), time.time()
        for entry in entries:
            envelope = envelope_of(entry, now, wall)
            if envelope is None or envelope.classification not in self.queues.queues:
                # Written by something else than a router of this pool: reported and removed, never retried.
                self._log.error(
                    "malformed durable queue entry acknowledged and dropped",
                    extra={"fields": {"stream": entry[0], "entry_id": entry[1]}},
                )
                self._acks.append((entry[0], entry[1]))
                self._ack_due.set()
                continue
            if envelope.destination not in self.strategy.names:  # accepted by a router with other names
                envelope.destination = self.strategy.least_loaded(self.strategy.names)
            self.held[(envelope.stream, envelope.entry_id)] = envelope
            self.strategy.assign(envelope.destination)
            self.queues.put(envelope)
            if claimed:
                metrics.QUEUE_CLAIMED.labels(envelope.classification).inc()
                self._log.info(
                    "message claimed from a router that stopped reading",
                    extra={"fields": envelope.log_fields()},
                )

    async def _feed(self) -> None:
        while True:
            room = self.prefetch - len(self.held)
            if room <= 0:
                self._space.clear()
                await self._space.wait()
                continue
            try:
                entries = await self.stream.read(room)
            except QueueUnavailable as exc:
                self._problems.warning(f"durable queue read failed: {exc}")
                await asyncio.sleep(RETRY_S)
                continue
            self._take(entries, claimed=False)
            if len(entries) < room:
                await asyncio.sleep(BATCH_S)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.keep_interval_s)
            try:
                await self._keep_once()
            except QueueUnavailable as exc:
                self._problems.warning(f"durable queue upkeep failed: {exc}")

    async def _keep_once(self) -> None:
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id in self.held:
            by_stream.setdefault(stream, []).append(entry_id)
        for key in await self.stream.keep(by_stream):
            envelope = self.held.pop(key, None)
            if envelope is not None:
                self._space.set()
                self._log.warning(
                    "message taken over by another router (this one looked dead)",
                    extra={"fields": envelope.log_fields()},
                )
        room = self.prefetch - len(self.held)
        if self.reading and room > 0:
            self._take(await self.stream.claim(room), claimed=True)
        self.depth = await self.stream.depths()
        if self.clock() >= self._next_forget:
            self._next_forget = self.clock() + self.forget_idle_ms / 2000
            gone = await self.stream.forget_dead(self.forget_idle_ms)
            if gone:
                self._log.info("forgot the consumers of routers gone", extra={"fields": {"consumers": gone}})

    async def _acker(self) -> None:
        while True:
            await self._ack_due.wait()
            await asyncio.sleep(BATCH_S)
            self._ack_due.clear()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        while self._acks:
            batch, self._acks = self._acks, []
            try:
                await self.stream.ack(batch)
            except QueueUnavailable as exc:
                # Left pending: claimed again after claim_idle and recognised as a duplicate by the sink.
                self._problems.warning(f"durable queue acknowledgement failed: {exc}", count=len(batch))
                return
            except asyncio.CancelledError:
                self._acks = batch + self._acks
                raise

    def describe(self) -> dict[str, object]:
        return {
            "backend": "redis-streams",
            "group": self.stream.group,
            "consumer": self.stream.consumer,
            "held": len(self.held),
            "prefetch": self.prefetch,
            "claim_idle_ms": self.stream.claim_idle_ms,
            "depth": dict(self.depth),
            "failures": self.stream.failures,
        }
