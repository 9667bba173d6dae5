"""The durable queue: Redis Streams with one consumer group shared by every router of the pool.

One stream per class and priority (``<prefix><class>:<priority>``, priorities 0-9), so the order inside a
class survives the process: a router reads from all of them and its local heap sends the lowest priority
number first. Redis commands only; what a router does with the entries is in ``feed.py``.

- **Accept** (``admit``): one Lua script, atomic in Redis: an id already claimed in the idempotency window is
  a duplicate; a class whose streams hold ``capacity`` entries (unread + being delivered) is full; otherwise
  the id is claimed and the message appended (XADD). ``queued`` is answered only after the script returned,
  so an accepted message is in Redis (on disk with AOF) before the client hears so.
- **Deliver**: ``XREADGROUP`` as this process's consumer (``host:pid:boot``: a dead one is recognisable and
  never reused); ``XACK`` + ``XDEL`` only after the destination acknowledged (or the message reached another
  final outcome: refused, failed, expired).
- **Take over**: ``XAUTOCLAIM`` claims entries idle for ``claim_idle_ms`` — those of a consumer that died. A
  live consumer's entries never look idle: ``keep`` re-claims what it holds (only entries still its own) well
  within that time. At shutdown ``release`` marks what was not delivered as idle at once, for the pool.

A redelivery after a crash is possible (the destination acknowledged, the router died before XACK): the
destinations recognise the message id (``Idempotency-Key``) and acknowledge it without delivering again.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from router_app.queues import Envelope
from router_app.resp import RespClient, RespError

PRIORITIES = range(10)
# How long one XREADGROUP waits for new entries; it returns at once when one arrives.
READ_BLOCK_MS = 1000

Entry = tuple[str, str, dict[bytes, bytes]]  # stream, entry id, fields


class QueueUnavailable(Exception):
    """Redis could not be asked; an admission must answer 503, a delivery loop retries."""


@dataclass(frozen=True, slots=True)
class Admission:
    outcome: str  # queued | duplicate | full
    previous: dict[str, Any] | None = None
    depth: int = 0
    entry_id: str = ""


def stream_key(prefix: str, message_class: str, priority: int) -> str:
    return f"{prefix}{message_class}:{priority}"


def consumer_name(host: str | None = None, pid: int | None = None, boot: str | None = None) -> str:
    """``host:pid:boot`` — the container (or host) and process that reads; ``boot`` makes a restarted
    process with the same pid a new consumer, so a dead one's entries are never mistaken for its own."""
    host = host if host is not None else socket.gethostname()
    pid = pid if pid is not None else os.getpid()
    return f"{host}:{pid}:{boot if boot is not None else os.urandom(3).hex()}"


def entry_fields(envelope: Envelope, deadline_ms: int, enqueued_ms: int) -> list[bytes]:
    """The message as stream fields; times are wall-clock milliseconds, as every router reads them."""
    return [
        b"id", envelope.message_id.encode(),
        b"class", envelope.classification.encode(),
        b"priority", str(envelope.priority).encode(),
        b"dest", envelope.destination.encode(),
        b"deadline", str(deadline_ms).encode(),
        b"enqueued", str(enqueued_ms).encode(),
        b"rid", envelope.request_id.encode(),
        b"tp", envelope.traceparent.encode(),
        b"body", envelope.body,
    ]  # fmt: skip


def envelope_of(entry: Entry, now: float, wall_now: float) -> Envelope | None:
    """An entry back as an ``Envelope`` whose deadline is on this process's clock; ``None`` if malformed."""
    stream, entry_id, fields = entry
    try:
        deadline_s = int(fields[b"deadline"]) / 1000
        enqueued_s = int(fields[b"enqueued"]) / 1000
        return Envelope(
            message_id=fields[b"id"].decode(),
            classification=fields[b"class"].decode(),
            priority=int(fields[b"priority"]),
            destination=fields[b"dest"].decode(),
            body=fields[b"body"],
            deadline=now + (deadline_s - wall_now),
            enqueued=now + (enqueued_s - wall_now),
            request_id=fields.get(b"rid", b"").decode(),
            traceparent=fields.get(b"tp", b"").decode(),
            stream=stream,
            entry_id=entry_id,
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


# KEYS: idempotency key, target stream, the class's streams. ARGV: decision, window ms, capacity, fields...
_ADMIT = """
local previous = redis.call('GET', KEYS[1])
if previous then return {'duplicate', previous} end
local depth = 0
for i = 3, #KEYS do depth = depth + redis.call('XLEN', KEYS[i]) end
if depth >= tonumber(ARGV[3]) then return {'full', tostring(depth)} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'queued', redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))}
"""
# Re-claim (reset the idle time of) the entries we hold, only those still ours; return the ids lost to
# another consumer. KEYS[1]: stream. ARGV: group, consumer, ids...
_KEEP = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""
# XAUTOCLAIM over the streams in order, at most ARGV[4] entries. KEYS: streams. ARGV: group, consumer,
# min idle ms, count. Returns {stream index, id, fields} triples.
_CLAIM = """
local out = {}
local left = tonumber(ARGV[4])
for i = 1, #KEYS do
  if left <= 0 then break end
  local r = redis.call('XAUTOCLAIM', KEYS[i], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', left)
  for _, e in ipairs(r[2]) do
    table.insert(out, {i, e[1], e[2]})
    left = left - 1
  end
end
return out
"""

# Forget the consumers of routers gone: nothing pending, no read for ARGV[3] ms (a live router reads every
# second). In one script, so a consumer cannot take an entry between the look and the removal (removing a
# consumer drops its pending entries from the group). KEYS[1]: stream. ARGV: group, own consumer, idle ms.
_FORGET = """
local gone = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['name'] ~= ARGV[2] and info['pending'] == 0 and info['idle'] > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    table.insert(gone, info['name'])
  end
end
return gone
"""


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


class StreamQueue:
    """The Redis side of the durable queue (one per process), over two lean connections (``resp.py``): one
    pipelined for every command, one for the blocking read."""

    def __init__(
        self,
        url: str,
        *,
        group: str,
        prefix: str,
        consumer: str,
        capacities: Mapping[str, int],
        claim_idle_ms: int,
        timeout_s: float,
        idempotency_prefix: str,
        idempotency_window_s: float,
    ) -> None:
        self.group = group
        self.prefix = prefix
        self.consumer = consumer
        self.capacities = dict(capacities)
        self.claim_idle_ms = claim_idle_ms
        self.idempotency_prefix = idempotency_prefix
        self.window_ms = max(1, round(idempotency_window_s * 1000))
        self.streams = {c: [stream_key(prefix, c, p) for p in PRIORITIES] for c in self.capacities}
        self.all_streams = [s for streams in self.streams.values() for s in streams]
        self._client = RespClient(url, timeout_s)
        # The blocking read holds its own connection, with a timeout longer than the block.
        self._reader = RespClient(url, timeout_s + READ_BLOCK_MS / 1000)
        self.failures = 0

    async def _call(self, pending: Awaitable[Any]) -> Any:
        try:
            return await pending
        except (RespError, OSError, TimeoutError) as exc:
            self.failures += 1
            raise QueueUnavailable(str(exc)) from exc

    async def _script(self, script: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVALSHA, or EVAL when Redis lost its script cache (a restart): EVAL caches it again."""
        try:
            return await self._call(self._client.call("EVALSHA", _sha(script), len(keys), *keys, *args))
        except QueueUnavailable as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            self.failures -= 1
        return await self._call(self._client.call("EVAL", script, len(keys), *keys, *args))

    async def start(self) -> None:
        """Reach Redis and make sure every stream and the group exist (from the start of each stream, so
        entries written before the group was made are delivered too)."""
        try:
            await self._client.call("PING")
            for stream in self.all_streams:
                try:
                    await self._client.call("XGROUP", "CREATE", stream, self.group, "0", "MKSTREAM")
                except RespError as exc:
                    if not str(exc).startswith("BUSYGROUP"):
                        raise
        except (RespError, OSError, TimeoutError) as exc:
            raise QueueUnavailable(f"cannot reach the durable queue's Redis: {exc}") from exc

    async def admit(self, envelope: Envelope, decision: dict[str, Any], ttl_s: float) -> Admission:
        """Claim the id and append the message, or say why not (duplicate, full); atomic in Redis."""
        now_ms = int(time.time() * 1000)
        streams = self.streams[envelope.classification]
        keys = [self.idempotency_prefix + envelope.message_id, streams[envelope.priority], *streams]
        args = [
            orjson.dumps(decision),
            self.window_ms,
            self.capacities[envelope.classification],
            *entry_fields(envelope, now_ms + round(ttl_s * 1000), now_ms),
        ]
        outcome, value = await self._script(_ADMIT, keys, args)
        if outcome == b"duplicate":
            return Admission("duplicate", previous=orjson.loads(value))
        if outcome == b"full":
            return Admission("full", depth=int(value))
        return Admission("queued", entry_id=value.decode())

    async def read(self, count: int, block_ms: int = READ_BLOCK_MS) -> list[Entry]:
        """New entries for this consumer (at most ``count`` per stream), waiting up to ``block_ms``."""
        reply = await self._call(
            self._reader.call(
                "XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count, "BLOCK", block_ms,
                "STREAMS", *self.all_streams, *(">" for _ in self.all_streams),
            )
        )  # fmt: skip
        return [
            (stream.decode(), entry_id.decode(), _pairs(flat))
            for stream, entries in reply or []
            for entry_id, flat in entries
            if flat is not None
        ]

    async def claim(self, count: int) -> list[Entry]:
        """Entries idle for ``claim_idle_ms`` (their consumer died), highest priority first."""
        reply = await self._script(
            _CLAIM, self.all_streams, [self.group, self.consumer, self.claim_idle_ms, count]
        )
        return [(self.all_streams[int(i) - 1], e.decode(), _pairs(flat)) for i, e, flat in reply]

    async def keep(self, held: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
        """Reset the idle time of the entries we hold; return those another consumer took meanwhile."""
        lost: list[tuple[str, str]] = []
        for stream, ids in held.items():
            ids = list(ids)
            if ids:
                gone = await self._script(_KEEP, [stream], [self.group, self.consumer, *ids])
                lost += [(stream, i.decode()) for i in gone]
        return lost

    async def forget_dead(self, idle_ms: int) -> list[str]:
        """Remove the consumers of routers gone (nothing pending, no read for ``idle_ms``); their names."""
        gone: set[str] = set()
        for stream in self.all_streams:
            names = await self._script(_FORGET, [stream], [self.group, self.consumer, idle_ms])
            gone.update(name.decode() for name in names)
        return sorted(gone)

    async def _pipelined(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one write and one round trip; an error reply fails the whole batch."""
        replies = await self._call(self._client.pipeline(commands))
        errors = [reply for reply in replies if isinstance(reply, RespError)]
        if errors:
            self.failures += 1
            raise QueueUnavailable(str(errors[0]))
        return replies

    async def ack(self, entries: Sequence[tuple[str, str]]) -> None:
        """Done with these entries: acknowledged in the group and deleted from the stream (one round trip)."""
        await self._pipelined([c for s, i in entries for c in (("XACK", s, self.group, i), ("XDEL", s, i))])

    async def release(self, entries: Sequence[tuple[str, str]]) -> None:
        """Hand entries back to the pool: still pending, but marked idle so that any live router claims them
        at its next look (no consumer is left holding them)."""
        idle = self.claim_idle_ms * 10
        await self._pipelined(
            [("XCLAIM", s, self.group, self.consumer, 0, i, "IDLE", idle, "JUSTID") for s, i in entries]
        )

    async def depths(self) -> dict[str, int]:
        """Entries per class not yet acknowledged (unread and being delivered)."""
        lengths = iter(await self._pipelined([("XLEN", s) for s in self.all_streams]))
        return {c: sum(next(lengths) for _ in streams) for c, streams in self.streams.items()}

    async def close(self) -> None:
        self._client.close()
        self._reader.close()
