"""Admission (queue, idempotency, breakers, shadow) and dispatch, with destinations faked in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from router_app.breaker import OPEN
from router_app.config import Settings
from router_app.engine import RoutingEngine
from router_app.httpclient import DeliveryError
from router_app.idempotency import MemoryStore, StoreUnavailable
from router_app.models import RouteRequest

URLS = {"a": "http://127.0.0.1:1/x", "b": "http://127.0.0.1:2/x"}


class FakeDestination:
    """Answers with the statuses given (last one repeats); ``None`` means unreachable."""

    def __init__(self, *statuses: int | None, delay: float = 0.0) -> None:
        self.statuses = list(statuses) or [200]
        self.delay = delay
        self.timeout_s = 1.0
        self.received: list[str] = []

    async def post(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status is None:
            raise DeliveryError("unreachable")
        if status == 200:
            self.received.append(dict(headers)[b"x-msgroute-message-id"].decode())
        return status, b"{}"

    def close(self) -> None:
        return None


def message(i: int | str, msg_type: str = "status", **extra: Any) -> RouteRequest:
    return RouteRequest(id=f"m-{i}", source="s", type=msg_type, **extra)


def engine_with(fakes: dict[str, FakeDestination], **overrides: Any) -> RoutingEngine:
    settings = Settings(
        destinations=tuple(fakes), destination_urls={n: URLS.get(n, URLS["a"]) for n in fakes}
    )
    for key, value in overrides.items():
        object.__setattr__(settings, key, value)
    engine = RoutingEngine(settings)
    assert engine.dispatcher is not None
    engine.dispatcher.clients = fakes  # type: ignore[assignment]
    return engine


def run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(coro_fn())


def test_accepted_messages_are_queued_and_delivered_once() -> None:
    fakes = {"a": FakeDestination(), "b": FakeDestination()}
    engine = engine_with(fakes)

    async def scenario() -> list[str]:
        await engine.start()
        outcomes = [(await engine.submit(message(i % 5), b"{}", mirrored=False)).outcome for i in range(10)]
        await engine.stop(drain_timeout_s=5)
        return outcomes

    outcomes = run(scenario)
    assert outcomes == ["queued"] * 5 + ["duplicate"] * 5
    delivered = fakes["a"].received + fakes["b"].received
    assert sorted(delivered) == [f"m-{i}" for i in range(5)]
    assert fakes["a"].received and fakes["b"].received  # both destinations used


def test_full_queue_is_429_with_retry_after_and_claims_nothing() -> None:
    engine = engine_with({"a": FakeDestination()}, queue_capacity=2)

    async def scenario() -> tuple[list[int], Any, Any]:
        answers = [await engine.submit(message(i), b"{}", mirrored=False) for i in range(3)]
        rejected = answers[2]
        engine.queues["tactical"].pop(engine.clock(), lambda e: None)  # make room
        retried = await engine.submit(message(2), b"{}", mirrored=False)
        return [a.status for a in answers], rejected, retried

    statuses, rejected, retried = run(scenario)
    assert statuses == [200, 200, 429]
    assert rejected.retry_after >= 1 and "full" in rejected.body["detail"]
    assert rejected.outcome == "rejected"
    assert (retried.status, retried.outcome) == (200, "queued")  # not a duplicate: the 429 left no trace


def test_duplicate_gives_back_its_reserved_slot() -> None:
    engine = engine_with({"a": FakeDestination()}, queue_capacity=1)

    async def scenario() -> list[str]:
        first = await engine.submit(message(1), b"{}", mirrored=False)
        again = await engine.submit(message(1), b"{}", mirrored=False)
        return [
            first.outcome,
            again.outcome,
            str(len(engine.queues["tactical"])),
            str(engine.queues["tactical"].reserved),
        ]

    assert run(scenario) == ["queued", "duplicate", "1", "0"]


def test_mirrored_traffic_has_no_side_effects() -> None:
    fakes = {"a": FakeDestination()}
    engine = engine_with(fakes)

    async def scenario() -> tuple[str, int, Any]:
        await engine.start()
        answer = await engine.submit(message(1), b"{}", mirrored=True)
        depth = len(engine.queues["tactical"])
        await engine.stop(drain_timeout_s=1)
        return answer.outcome, depth, await engine.store.lookup("m-1")

    assert run(scenario) == ("shadow", 0, None)
    assert fakes["a"].received == []
    assert engine.strategy.loads["a"].pending == 0


def test_all_breakers_open_is_503_with_retry_after() -> None:
    engine = engine_with({"a": FakeDestination(), "b": FakeDestination()})
    for breaker in engine.breakers.values():
        for _ in range(breaker.failure_threshold):
            breaker.record_failure()

    answer = run(lambda: engine.submit(message(1), b"{}", mirrored=False))
    assert (answer.status, answer.outcome) == (503, "unavailable")
    assert 1 <= answer.retry_after <= 60
    assert run(lambda: engine.store.lookup("m-1")) is None


def test_store_outage_is_503_and_releases_the_slot() -> None:
    engine = engine_with({"a": FakeDestination()})

    class BrokenStore(MemoryStore):
        async def claim(self, key: str, decision: dict[str, Any]) -> dict[str, Any] | None:
            raise StoreUnavailable("down")

        async def lookup(self, key: str) -> dict[str, Any] | None:
            raise StoreUnavailable("down")

    engine.store = BrokenStore(60, 10)
    answer = run(lambda: engine.submit(message(1), b"{}", mirrored=False))
    assert (answer.status, answer.outcome) == (503, "unavailable")
    assert engine.queues["tactical"].reserved == 0
    shadow = run(lambda: engine.submit(message(2), b"{}", mirrored=True))
    assert shadow.outcome == "shadow"  # a shadow answer does not need the store


def test_failed_delivery_fails_over_and_opens_the_breaker() -> None:
    fakes = {"a": FakeDestination(None), "b": FakeDestination()}
    engine = engine_with(
        fakes, breaker_failure_threshold=2, flags={"least_loaded": 0.0, "predictive_load": 0.0}
    )

    async def scenario() -> None:
        await engine.start()
        for i in range(6):
            await engine.submit(message(i), b"{}", mirrored=False)
        await engine.stop(drain_timeout_s=5)

    run(scenario)
    assert sorted(fakes["b"].received) == [f"m-{i}" for i in range(6)]  # nothing lost
    assert engine.breakers["a"].state == OPEN


def test_refused_message_is_not_retried() -> None:
    fakes = {"a": FakeDestination(400), "b": FakeDestination(400)}
    engine = engine_with(fakes)

    async def scenario() -> None:
        await engine.start()
        await engine.submit(message(1), b"{}", mirrored=False)
        await engine.stop(drain_timeout_s=2)

    run(scenario)
    assert engine.breakers["a"].state != OPEN
    assert fakes["a"].statuses == [400] and fakes["b"].statuses == [400]
    described = engine.describe()["destinations"]
    assert described["a"]["in_flight"] == 0 and described["b"]["in_flight"] == 0


def test_expired_message_is_not_delivered() -> None:
    fakes = {"a": FakeDestination()}
    engine = engine_with(fakes)
    now = [100.0]
    engine.clock = lambda: now[0]
    engine.dispatcher.clock = engine.clock  # type: ignore[union-attr]

    async def scenario() -> None:
        await engine.submit(message(1, ttl_ms=1000), b"{}", mirrored=False)
        now[0] += 2
        engine.queues.sweep(now[0], 0.5)

    run(scenario)
    assert len(engine.queues["tactical"]) == 0 and engine.queues["tactical"].expired == 1
    assert engine.strategy.loads["a"].pending == 0


@pytest.mark.parametrize(("ttl_ms", "expected"), [(None, 30.0), (0, 30.0), (5000, 5.0), (86_400_000, 3600.0)])
def test_ttl_defaults_and_cap(ttl_ms: int | None, expected: float) -> None:
    engine = engine_with({"a": FakeDestination()})
    assert engine._ttl_s(message(1, ttl_ms=ttl_ms)) == expected


def test_drain_abandons_what_it_cannot_deliver() -> None:
    fakes = {"a": FakeDestination(delay=0.5)}
    engine = engine_with(fakes, dispatch_concurrency=1)

    async def scenario() -> int:
        await engine.start()
        for i in range(5):
            await engine.submit(message(i), b"{}", mirrored=False)
        await asyncio.sleep(0.05)
        assert engine.dispatcher is not None
        return await engine.dispatcher.drain(timeout_s=0.1)

    abandoned = run(scenario)
    # The one in flight at the deadline ends with its real outcome; the four still queued are abandoned.
    assert abandoned == 4
    assert fakes["a"].received == ["m-0"]
    assert len(engine.queues["tactical"]) == 0


def test_drain_logs_every_abandoned_id(caplog: pytest.LogCaptureFixture) -> None:
    fakes = {"a": FakeDestination(delay=5.0)}
    engine = engine_with(fakes, dispatch_concurrency=1)
    fakes["a"].timeout_s = 0.05  # the in-flight grace: shorter than the destination's answer

    async def scenario() -> int:
        await engine.start()
        for i in range(30):
            await engine.submit(message(i), b"{}", mirrored=False)
        await asyncio.sleep(0.05)
        assert engine.dispatcher is not None
        return await engine.dispatcher.drain(timeout_s=0.05)

    with caplog.at_level("ERROR", logger="router_app"):
        abandoned = run(scenario)
    logged = {r.fields["message_id"] for r in caplog.records if getattr(r, "fields", {}).get("outcome")}
    assert abandoned == 30
    assert logged == {f"m-{i}" for i in range(30)}  # none held back by the rate limit
    in_flight = [r for r in caplog.records if "may have received" in r.getMessage()]
    assert [r.fields["message_id"] for r in in_flight] == ["m-0"]


def test_a_crashing_client_counts_as_a_failed_attempt() -> None:
    class Crashing(FakeDestination):
        async def post(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
            raise RuntimeError("bug")

    fakes = {"a": Crashing(), "b": FakeDestination()}
    engine = engine_with(fakes, flags={"least_loaded": 0.0, "predictive_load": 0.0})

    async def scenario() -> None:
        await engine.start()
        for i in range(2):
            await engine.submit(message(i), b"{}", mirrored=False)
        await engine.stop(drain_timeout_s=2)

    run(scenario)
    assert sorted(fakes["b"].received) == ["m-0", "m-1"]
    assert engine.strategy.loads["a"].in_flight == 0
    assert engine.breakers["a"].failures >= 1
