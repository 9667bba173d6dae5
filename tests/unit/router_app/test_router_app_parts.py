"""Pure parts of the engine: queues, circuit breaker, routing strategy, feature flags, idempotency store."""

from __future__ import annotations

from collections import Counter

import pytest

from router_app.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from router_app.flags import FeatureFlags
from router_app.idempotency import MemoryStore
from router_app.queues import ClassQueue, Envelope, QueueSet, retry_after_s, weighted_schedule
from router_app.strategy import DestinationLoad, RoutingStrategy, score


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def envelope(message_id: str, priority: int = 5, deadline: float = 2000.0, cls: str = "tactical") -> Envelope:
    return Envelope(message_id, cls, priority, "d", b"{}", deadline, 0.0)


# -- queues --------------------------------------------------------------------------------------------------


def test_queue_orders_by_priority_then_arrival() -> None:
    queue = ClassQueue("tactical", 10)
    for message_id, priority in [("a", 5), ("b", 1), ("c", 5), ("d", 0)]:
        assert queue.try_reserve()
        queue.commit(envelope(message_id, priority))
    popped = [queue.pop(0.0, lambda e: None) for _ in range(4)]
    assert [e.message_id for e in popped if e] == ["d", "b", "a", "c"]


def test_queue_is_bounded_including_reservations() -> None:
    queue = ClassQueue("q", 2)
    assert queue.try_reserve() and queue.try_reserve()
    assert queue.try_reserve() is False
    assert queue.rejected == 1
    queue.release()
    assert queue.try_reserve() is True


def test_expired_messages_are_reported_not_dropped_silently() -> None:
    expired: list[str] = []
    queue = ClassQueue("q", 10)
    for message_id, deadline in [("old", 5.0), ("new", 50.0), ("older", 1.0)]:
        queue.try_reserve()
        queue.commit(envelope(message_id, deadline=deadline))
    assert queue.sweep(10.0, lambda e: expired.append(e.message_id)) == 2
    assert sorted(expired) == ["old", "older"] and len(queue) == 1 and queue.expired == 2
    assert queue.pop(100.0, lambda e: expired.append(e.message_id)) is None
    assert expired[-1] == "new" and queue.expired == 3


def test_weighted_schedule_is_smooth() -> None:
    assert weighted_schedule({"a": 3, "b": 1}) == ["a", "a", "b", "a"]
    assert Counter(weighted_schedule({"s": 4, "t": 1, "u": 2})) == {"s": 4, "t": 1, "u": 2}


def test_queue_set_takes_turns_by_weight_and_skips_empty() -> None:
    queues = QueueSet({"s": 10, "t": 10}, {"s": 2, "t": 1}, on_expired=lambda e: None)
    for i in range(4):
        for name in ("s", "t"):
            queues["s" if name == "s" else "t"].try_reserve()
            queues.commit(queues[name], envelope(f"{name}{i}", cls=name))
    order = [queues.pop_next(0.0).message_id for _ in range(8)]  # type: ignore[union-attr]
    assert order[:6] == ["s0", "t0", "s1", "s2", "t1", "s3"]  # smooth: s t s | s t s
    assert order[6:] == ["t2", "t3"]  # strategic is empty: tactical is not held back
    assert queues.pop_next(0.0) is None


@pytest.mark.parametrize(
    ("depth", "rate", "expected"),
    [(0, 0.0, 1), (100, 0.0, 30), (100, 50.0, 2), (10_000, 10.0, 30), (1, 1000.0, 1)],
)
def test_retry_after_estimate(depth: int, rate: float, expected: int) -> None:
    assert retry_after_s(depth, rate) == expected


# -- circuit breaker -----------------------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_recovers() -> None:
    clock = Clock()
    changes: list[tuple[int, int]] = []
    breaker = CircuitBreaker("d", 3, 30.0, clock, on_change=lambda n, a, b: changes.append((a, b)))
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets: failures must be consecutive
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == OPEN and not breaker.available() and not breaker.allow()
    assert breaker.seconds_until_retry() == 30.0
    clock.now += 30
    assert breaker.available()
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert breaker.allow() is False  # one probe at a time
    breaker.record_success()
    assert breaker.state == CLOSED
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_failed_probe_reopens_for_a_full_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker("d", 1, 10.0, clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    clock.now += 3
    breaker.record_failure()
    assert breaker.state == OPEN and breaker.seconds_until_retry() == 10.0


def test_abandoned_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker("d", 1, 1.0, clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow() and not breaker.allow()
    breaker.abandon()
    assert breaker.allow()


# -- strategy and flags --------------------------------------------------------------------------------------


def test_score_combines_latency_and_outstanding() -> None:
    load = DestinationLoad("d", ewma_ms=4.0, in_flight=2, pending=1)
    assert score(load, 1.0, 1.0, predictive=True) == 4.0 * 4 + 3
    assert score(load, 0.0, 2.0, predictive=True) == 6
    assert score(load, 1.0, 1.0, predictive=False) == 3


def test_least_loaded_prefers_fast_and_idle_destinations() -> None:
    strategy = RoutingStrategy(["a", "b", "c"])
    strategy.loads["a"].ewma_ms = 50.0  # slow
    strategy.assign("b")  # busy
    assert strategy.least_loaded(["a", "b", "c"]) == "c"
    strategy.assign("c")
    strategy.assign("c")
    # b has 1 outstanding at 1 ms, c has 2: b wins; a is slow even when idle
    assert strategy.least_loaded(["a", "b", "c"]) == "b"
    assert strategy.least_loaded(["a"]) == "a"


def test_equal_loads_rotate() -> None:
    strategy = RoutingStrategy(["a", "b", "c"])
    assert [strategy.least_loaded(["a", "b", "c"]) for _ in range(6)] == ["a", "b", "c"] * 2


def test_latency_feeds_the_prediction() -> None:
    strategy = RoutingStrategy(["a", "b"], alpha=0.5)
    strategy.start("a")
    strategy.finish("a", 9.0)
    assert strategy.loads["a"].ewma_ms == 5.0 and strategy.loads["a"].in_flight == 0
    assert strategy.least_loaded(["a", "b"]) == "b"


def test_flags_are_stable_and_proportional() -> None:
    flags = FeatureFlags({"least_loaded": 25})
    ids = [f"m-{i}" for i in range(20_000)]
    share = sum(flags.enabled("least_loaded", i) for i in ids) / len(ids)
    assert 0.23 < share < 0.27
    assert [flags.enabled("least_loaded", i) for i in ids[:50]] == [
        flags.enabled("least_loaded", i) for i in ids[:50]
    ]
    wider = FeatureFlags({"least_loaded": 50})
    assert all(wider.enabled("least_loaded", i) for i in ids if flags.enabled("least_loaded", i))
    assert FeatureFlags({"least_loaded": 0}).enabled("least_loaded", "x") is False
    assert FeatureFlags({}).enabled("predictive_load", "x") is True
    with pytest.raises(ValueError, match="unknown feature flag"):
        FeatureFlags({"turbo": 5})


# -- idempotency (memory) ------------------------------------------------------------------------------------


def decision(destination: str = "a") -> dict[str, object]:
    return {
        "classification": "tactical",
        "priority": 5,
        "queue": "tactical",
        "destination": destination,
        "engine_version": "1",
        "mode": "live",
        "rule": "r",
        "explanation": "e",
        "strategy": "least_loaded",
        "outcome": "queued",
    }


def test_memory_store_claims_once_per_window() -> None:
    clock = Clock()
    store = MemoryStore(window_s=60, max_entries=100, clock=clock)
    assert store.claim_now("m1", decision("a")) is None
    earlier = store.claim_now("m1", decision("b"))
    assert earlier is not None and earlier["destination"] == "a" and earlier["message_id"] == "m1"
    assert store.lookup_now("m1") == earlier
    clock.now += 60
    assert store.lookup_now("m1") is None
    assert store.claim_now("m1", decision("b")) is None  # a new window
    assert store.lookup_now("m1")["destination"] == "b"  # type: ignore[index]


def test_memory_store_is_bounded() -> None:
    clock = Clock()
    store = MemoryStore(window_s=600, max_entries=3, clock=clock)
    for i in range(5):
        store.claim_now(f"m{i}", decision())
    assert len(store) == 3 and store.evicted == 2
    assert store.lookup_now("m0") is None and store.lookup_now("m4") is not None


def test_memory_store_purges_expired_entries() -> None:
    clock = Clock()
    store = MemoryStore(window_s=1, max_entries=100, clock=clock)
    for i in range(10):
        store.claim_now(f"m{i}", decision())
    clock.now += 2
    store.claim_now("fresh", decision())
    assert len(store) == 1 and store.evicted == 0
