"""Durable queue logic without Redis: entry encoding, trace context, settings, and the feed and dispatcher
over a fake stream (the Redis side runs against a real redis-server in tests/router_app_integration)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from router_app import resp, tracing
from router_app.breaker import CircuitBreaker
from router_app.config import ConfigError, load_settings, url_has_password
from router_app.dispatch import Dispatcher
from router_app.feed import DurableFeed
from router_app.queues import Envelope, QueueSet
from router_app.strategy import RoutingStrategy
from router_app.streams import Entry, consumer_name, entry_fields, envelope_of, stream_key

GOOD = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# -- trace context -------------------------------------------------------------------------------------------


def test_a_valid_traceparent_keeps_its_trace_and_gets_a_router_span() -> None:
    trace = tracing.start(GOOD)
    assert trace.accepted and trace.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace.traceparent.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert trace.span_id != "00f067aa0ba902b7" and trace.traceparent.endswith("-01")
    assert tracing.parse(trace.traceparent.encode()) == (trace.trace_id, "01")


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"garbage",
        GOOD.upper(),  # hex must be lower case
        GOOD[:-1],
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        GOOD + b"-extra",  # version 00 has exactly four fields
        GOOD.replace(b"-01", b"-01\r\nx-evil: 1"),
    ],
)
def test_a_malformed_traceparent_is_replaced_by_a_new_trace(value: bytes) -> None:
    assert tracing.parse(value) is None
    trace = tracing.start(value)
    assert not trace.accepted and trace.flags == "00"
    assert tracing.parse(trace.traceparent.encode()) == (trace.trace_id, "00")


def test_a_later_version_is_read_and_passed_on_as_version_00() -> None:
    trace = tracing.start(b"01" + GOOD[2:] + b"-future")
    assert trace.accepted and trace.traceparent.startswith("00-4bf92f35")


def test_no_traceparent_starts_a_trace() -> None:
    first, second = tracing.start(None), tracing.start(None)
    assert first.trace_id != second.trace_id and not first.accepted


# -- settings ------------------------------------------------------------------------------------------------

DISPATCH = {"ROUTER_DESTINATIONS": "a=http://127.0.0.1:1/x"}


def test_a_durable_queue_without_a_password_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**DISPATCH, "ROUTER_QUEUE_URL": "redis://redis:6379/0"})
    assert caught.value.variable == "ROUTER_QUEUE_URL" and "password" in caught.value.problem


def test_a_durable_queue_without_a_password_needs_an_explicit_allowance() -> None:
    settings = load_settings(
        {**DISPATCH, "ROUTER_QUEUE_URL": "redis://redis:6379/0", "ROUTER_QUEUE_ALLOW_NO_PASSWORD": "on"}
    )
    assert settings.durable


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@redis:6379/0", True),
        ("redis://user:s3cret@redis:6379/0", True),
        ("redis://redis:6379/0?password=s3cret", True),
        ("redis://user@redis:6379/0", False),
        ("redis://redis:6379/0?password=", False),
    ],
)
def test_password_in_url(url: str, expected: bool) -> None:
    assert url_has_password(url) is expected


def test_idempotency_must_live_in_the_queue_redis() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                **DISPATCH,
                "ROUTER_QUEUE_URL": "redis://:pw@redis:6379/0",
                "ROUTER_REDIS_URL": "redis://:pw@other:6379/0",
            }
        )
    assert caught.value.variable == "ROUTER_REDIS_URL"


def test_durable_queue_is_off_unless_set_and_idle_when_decide_only() -> None:
    assert not load_settings(DISPATCH).durable
    assert not load_settings({"ROUTER_QUEUE_URL": "redis://:pw@redis:6379/0"}).durable  # decide-only


# -- stream entries ------------------------------------------------------------------------------------------


def envelope(i: int = 1, priority: int = 5, destination: str = "a") -> Envelope:
    return Envelope(
        f"m-{i}", "tactical", priority, destination, b'{"id": "x"}', 0.0, 0.0, "req-1", GOOD.decode()
    )


def test_an_entry_comes_back_as_the_envelope_with_the_deadline_on_the_local_clock() -> None:
    fields = entry_fields(envelope(), deadline_ms=1_000_500, enqueued_ms=1_000_000)
    flat = dict(zip(fields[::2], fields[1::2], strict=True))
    back = envelope_of(("q:tactical:5", "1-0", flat), now=50.0, wall_now=1000.2)
    assert back is not None
    assert (back.message_id, back.classification, back.priority, back.destination) == (
        "m-1",
        "tactical",
        5,
        "a",
    )
    assert (back.body, back.request_id, back.traceparent) == (b'{"id": "x"}', "req-1", GOOD.decode())
    assert back.deadline == pytest.approx(50.3) and back.enqueued == pytest.approx(49.8)
    assert (back.stream, back.entry_id) == ("q:tactical:5", "1-0")


@pytest.mark.parametrize("drop", [b"id", b"deadline", b"priority"])
def test_a_malformed_entry_is_none(drop: bytes) -> None:
    fields = entry_fields(envelope(), 1, 1)
    flat = {k: v for k, v in zip(fields[::2], fields[1::2], strict=True) if k != drop}
    assert envelope_of(("s", "1-0", flat), 0.0, 0.0) is None


def test_names() -> None:
    assert stream_key("msgroute:q:", "strategic", 0) == "msgroute:q:strategic:0"
    assert consumer_name("router-new-1", 7, "ab12cd") == "router-new-1:7:ab12cd"
    assert consumer_name() != consumer_name()  # a restarted process is a new consumer


# -- feed and dispatcher over a fake stream ------------------------------------------------------------------


class FakeStream:
    """Holds entries like a stream + consumer group, in memory."""

    def __init__(self, entries: Sequence[Envelope], claimable: Sequence[Envelope] = ()) -> None:
        self.streams = {"tactical": [stream_key("q:", "tactical", p) for p in range(10)]}
        self.group, self.consumer, self.claim_idle_ms, self.failures = "g", "me", 1000, 0
        self.unread = [self._entry(e, n) for n, e in enumerate(entries)]
        self.claimable = [self._entry(e, 100 + n) for n, e in enumerate(claimable)]
        self.acked: list[tuple[str, str]] = []
        self.ids = {(s, i): f[b"id"] for s, i, f in [*self.unread, *self.claimable]}
        self.delivered: list[bytes] = []  # the destination's record, to check acknowledgements against
        self.acked_undelivered: list[bytes] = []
        self.released: list[tuple[str, str]] = []
        self.stolen: set[tuple[str, str]] = set()
        self.closed = False

    @staticmethod
    def _entry(e: Envelope, n: int) -> Entry:
        fields = entry_fields(e, deadline_ms=int(9e12), enqueued_ms=0)
        return (
            stream_key("q:", e.classification, e.priority),
            f"{n}-0",
            dict(zip(fields[::2], fields[1::2], strict=True)),
        )

    async def read(self, count: int, block_ms: int = 0) -> list[Entry]:
        taken, self.unread = self.unread[:count], self.unread[count:]
        if not taken:
            await asyncio.sleep(0.01)
        return taken

    async def claim(self, count: int) -> list[Entry]:
        taken, self.claimable = self.claimable[:count], self.claimable[count:]
        return taken

    async def keep(self, held: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
        return [(s, i) for s, ids in held.items() for i in ids if (s, i) in self.stolen]

    async def ack(self, entries: Sequence[tuple[str, str]]) -> None:
        self.acked += entries
        self.acked_undelivered += [self.ids[e] for e in entries if self.ids[e] not in self.delivered]

    async def release(self, entries: Sequence[tuple[str, str]]) -> None:
        self.released += entries

    async def depths(self) -> dict[str, int]:
        return {"tactical": len(self.unread)}

    async def forget_dead(self, idle_ms: int) -> list[str]:
        return []

    async def close(self) -> None:
        self.closed = True


class Destination:
    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay, self.timeout_s = status, delay, 1.0
        self.headers: list[dict[bytes, bytes]] = []
        self.delivered: list[bytes] = []

    async def post(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        await asyncio.sleep(self.delay)
        self.headers.append(dict(headers))
        self.delivered.append(dict(headers)[b"idempotency-key"])
        return self.status, b"{}"

    def close(self) -> None:
        return None


def dispatcher_over(stream: FakeStream, destination: Destination, concurrency: int = 2) -> Dispatcher:
    def expired(envelope: Envelope) -> None:  # the dispatcher is made below, with these queues
        dispatcher.on_expired(envelope)

    queues = QueueSet({"tactical": 10**9}, {"tactical": 1}, on_expired=expired)
    strategy = RoutingStrategy(("a",), 0.2, 1.0, 1.0)
    feed = DurableFeed(stream, queues, strategy, prefetch=2 * concurrency)  # type: ignore[arg-type]
    feed.keep_interval_s = 0.01
    dispatcher = Dispatcher(
        queues,
        strategy,
        {"a": CircuitBreaker("a", 10, 60.0, time.monotonic)},
        {"a": destination},  # type: ignore[dict-item]
        concurrency,
        3,
        "t",
        feed=feed,
    )
    return dispatcher


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_entries_are_acknowledged_only_after_their_delivery() -> None:
    stream = FakeStream([envelope(i) for i in range(5)], claimable=[envelope(9)])
    destination = Destination()
    destination.delivered = stream.delivered

    async def scenario() -> None:
        dispatcher = dispatcher_over(stream, destination)
        dispatcher.start()
        await until(lambda: len(stream.acked) == 6)
        await dispatcher.drain(1.0)

    asyncio.run(scenario())
    delivered = [h[b"idempotency-key"] for h in destination.headers]
    assert sorted(delivered) == sorted(f"m-{i}".encode() for i in (0, 1, 2, 3, 4, 9))
    assert all(h[b"traceparent"] == GOOD for h in destination.headers)
    assert len(set(stream.acked)) == 6 and stream.acked_undelivered == []
    assert stream.released == [] and stream.closed


def test_a_refused_message_is_acknowledged_too_never_redelivered() -> None:
    stream = FakeStream([envelope(1)])

    async def scenario() -> None:
        dispatcher = dispatcher_over(stream, Destination(status=400))
        dispatcher.start()
        await until(lambda: stream.acked)
        await dispatcher.drain(1.0)

    asyncio.run(scenario())
    assert len(stream.acked) == 1


def test_shutdown_hands_back_what_was_not_delivered_and_acknowledges_nothing_of_it() -> None:
    stream = FakeStream([envelope(i, priority=i % 10) for i in range(10)])
    destination = Destination(delay=0.3)

    async def scenario() -> None:
        dispatcher = dispatcher_over(stream, destination, concurrency=1)
        dispatcher.start()
        await until(lambda: len(dispatcher.feed.held) == 2 and dispatcher.busy == 1)  # type: ignore[union-attr]
        await dispatcher.drain(0.01)

    asyncio.run(scenario())
    assert len(destination.headers) == 1 and len(stream.acked) == 1  # the one in flight ended delivered
    assert len(stream.released) == 1  # the one held at hand goes back to the pool
    assert not set(stream.acked) & set(stream.released)


def test_a_message_taken_over_by_another_router_is_not_delivered_here() -> None:
    stream = FakeStream([envelope(1), envelope(2)])
    stream.stolen = {(stream_key("q:", "tactical", 5), "1-0")}
    destination = Destination(delay=0.2)

    async def scenario() -> None:
        dispatcher = dispatcher_over(stream, destination, concurrency=1)
        dispatcher.start()
        await until(lambda: len(stream.acked) == 1)
        await asyncio.sleep(0.05)
        await dispatcher.drain(1.0)

    asyncio.run(scenario())
    assert [h[b"idempotency-key"] for h in destination.headers] == [b"m-1"]
    assert stream.released == []


# -- RESP client (the admission's connection) ----------------------------------------------------------------


def test_commands_are_encoded_as_bulk_string_arrays() -> None:
    assert resp.encode(("EVALSHA", b"ab", 2)) == b"*3\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n"


def test_replies_are_parsed_whole_or_not_at_all() -> None:
    reply = b"*3\r\n$6\r\nqueued\r\n:42\r\n*2\r\n$-1\r\n+OK\r\n-NOSCRIPT x\r\n"
    value, pos = resp.parse(reply)
    assert value == [b"queued", 42, [None, b"OK"]]
    error, end = resp.parse(reply, pos)
    assert isinstance(error, resp.RespError) and str(error) == "NOSCRIPT x" and end == len(reply)
    for cut in range(1, pos):
        with pytest.raises(resp.Incomplete):
            resp.parse(reply[:cut])


def test_a_reply_that_is_not_resp_is_refused() -> None:
    with pytest.raises(ValueError):
        resp.parse(b"HTTP/1.1 200 OK\r\n")
