"""Idempotency: the same message id within the window gets the same decision and is dispatched once.

``claim`` is atomic: it stores a decision for an id unless one is already there, and returns the earlier one
if so. In memory by default (one process); with ``ROUTER_REDIS_URL`` every engine pointing at the same Redis
shares the window, the legacy and the new engine included, so a retry that nginx fails over to the other pool
is recognised as a duplicate and never delivered twice. ``lookup`` only reads: mirrored traffic uses it,
because a shadow copy must not claim an id that the live request is about to claim.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import orjson

Decision = dict[str, Any]


class StoreUnavailable(Exception):
    """The shared store could not be asked; the request must not proceed as if the id were new."""


class IdempotencyStore(Protocol):
    backend: str

    async def claim(self, key: str, decision: Decision) -> Decision | None: ...
    async def lookup(self, key: str) -> Decision | None: ...
    async def release(self, key: str, decision: Decision) -> None: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def describe(self) -> dict[str, Any]: ...


# A decision minus its message id (the key) is one of few shapes: entries share interned shape tuples, so an
# entry costs ~200 bytes (key, a 2-tuple, a float, a deque slot) instead of ~900 for a dict per id.
SHAPE_FIELDS = (
    "classification",
    "priority",
    "queue",
    "destination",
    "engine_version",
    "mode",
    "rule",
    "explanation",
    "strategy",
    "outcome",
)
MAX_SHAPES = 10_000


class MemoryStore:
    """Dict plus an expiry queue; bounded: past ``max_entries`` the oldest entries go first (counted)."""

    backend = "memory"

    def __init__(
        self, window_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, tuple[Any, ...]]] = {}
        self._keys: deque[str] = deque()  # insertion order == expiry order (the window is constant)
        self._shapes: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _intern(self, decision: Decision) -> tuple[Any, ...]:
        shape = tuple([decision.get(name) for name in SHAPE_FIELDS])
        shared = self._shapes.get(shape)
        if shared is None:
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            shared = self._shapes[shape] = shape
        return shared

    @staticmethod
    def _decision(key: str, shape: tuple[Any, ...]) -> Decision:
        decision: Decision = {"message_id": key}
        decision.update(zip(SHAPE_FIELDS, shape, strict=True))
        return decision

    def _purge(self, now: float) -> None:
        keys, entries = self._keys, self._entries
        while keys:
            entry = entries.get(keys[0])
            if entry is not None and entry[0] > now and len(entries) <= self.max_entries:
                return
            key = keys.popleft()
            if entry is not None:
                del entries[key]
                if entry[0] > now:
                    self.evicted += 1

    def lookup_now(self, key: str) -> Decision | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return self._decision(key, entry[1])

    def claim_now(self, key: str, decision: Decision) -> Decision | None:
        """Synchronous claim: nothing can interleave on the event loop."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > now:
                return self._decision(key, entry[1])
            del self._entries[key]  # expired but not purged yet: its old queue slot is skipped by _purge
        self._entries[key] = (now + self.window_s, self._intern(decision))
        self._keys.append(key)
        self._purge(now)
        return None

    async def claim(self, key: str, decision: Decision) -> Decision | None:
        return self.claim_now(key, decision)

    async def release(self, key: str, decision: Decision) -> None:
        """Withdraw our own claim (admission failed after it): the id is new again."""
        entry = self._entries.get(key)
        if entry is not None and entry[1] == self._intern(decision):
            del self._entries[key]  # its expiry-queue slot is skipped by _purge

    async def lookup(self, key: str) -> Decision | None:
        return self.lookup_now(key)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "entries": len(self._entries),
            "window_s": self.window_s,
            "max_entries": self.max_entries,
            "evicted": self.evicted,
        }


# GET-or-SET in one atomic step; works on every Redis since 2.6 (SET NX GET needs 7.0).
_CLAIM_SCRIPT = """
local previous = redis.call('GET', KEYS[1])
if previous then return previous end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# Withdraw a claim only if it is still ours (another engine may have claimed the id since it expired).
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore:
    """Shared window in Redis: one key per message id, expiring with the window."""

    backend = "redis"

    def __init__(self, url: str, window_s: float, prefix: str, timeout_s: float) -> None:
        import redis.asyncio as aioredis  # only deployments that configure Redis need the client loaded

        self.url = url
        self.window_ms = max(1, round(window_s * 1000))
        self.prefix = prefix
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
        )
        self._claim = self._client.register_script(_CLAIM_SCRIPT)
        self._release = self._client.register_script(_RELEASE_SCRIPT)
        self._errors: tuple[type[BaseException], ...] = (aioredis.RedisError, OSError, TimeoutError)
        self.failures = 0

    async def start(self) -> None:
        """Fail the start if Redis cannot be reached: a misconfigured URL must not go live."""
        try:
            await self._client.ping()
        except self._errors as exc:
            raise StoreUnavailable(f"cannot reach Redis: {exc}") from exc

    async def claim(self, key: str, decision: Decision) -> Decision | None:
        try:
            previous = await self._claim(
                keys=[self.prefix + key], args=[orjson.dumps(decision), self.window_ms]
            )
        except self._errors as exc:
            self.failures += 1
            raise StoreUnavailable(str(exc)) from exc
        return None if previous is None else orjson.loads(previous)

    async def release(self, key: str, decision: Decision) -> None:
        try:
            await self._release(keys=[self.prefix + key], args=[orjson.dumps(decision)])
        except self._errors as exc:
            self.failures += 1
            raise StoreUnavailable(str(exc)) from exc

    async def lookup(self, key: str) -> Decision | None:
        try:
            previous = await self._client.get(self.prefix + key)
        except self._errors as exc:
            self.failures += 1
            raise StoreUnavailable(str(exc)) from exc
        return None if previous is None else orjson.loads(previous)

    async def close(self) -> None:
        await self._client.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "window_s": self.window_ms / 1000,
            "key_prefix": self.prefix,
            "failures": self.failures,
        }
