"""The durable queue (Redis Streams) with real routers, a real redis-server (password, AOF) and real sinks
keeping a ledger: what a router answered ``queued`` for is delivered exactly once, whatever happens to the
router or to Redis in between."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def destinations(*sinks: Any) -> str:
    return ",".join(f"{s.proc.args[s.proc.args.index('--name') + 1]}={s.url}/deliver" for s in sinks)


@pytest.fixture
def ledger_sink(start_sink: Callable[..., Any], tmp_path: Path) -> Callable[..., tuple[Any, Path]]:
    """``ledger_sink(name, *args)``: a sink keeping its ledger in the test's directory; (sink, path)."""

    def start(name: str, *args: str) -> tuple[Any, Path]:
        book = tmp_path / f"{name}.jsonl"
        return start_sink(name, *args, "--ledger", str(book)), book

    return start


def durable(redis: Any, *sinks: Any, **extra: str) -> dict[str, str]:
    return {
        "ROUTER_DESTINATIONS": destinations(*sinks),
        "ROUTER_QUEUE_URL": redis.url,
        "ROUTER_QUEUE_CLAIM_IDLE_MS": "1000",
        **extra,
    }


def ledger(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def delivered(path: Path) -> Counter[str]:
    return Counter(r["message_id"] for r in ledger(path) if r["event"] == "delivered")


def pool_depth(router: Any, h: SimpleNamespace) -> int:
    """Entries not yet acknowledged in Redis (unread + being delivered), as the router last read them."""
    return sum(h.http("GET", f"{router.url}/health/details")[1]["durable_queue"]["depth"].values())


def consumers(redis_url: str) -> set[str]:
    """Consumer names in the pool's group, over every stream."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return {
            c["name"].decode()
            for key in client.scan_iter("msgroute:q:*")
            for c in client.xinfo_consumers(key, "msgroute")
        }
    finally:
        client.close()


def records(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_sigkill_with_messages_queued_another_router_delivers_each_once(
    durable_redis: Any, ledger_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink, book = ledger_sink("slow", "--latency-ms", "300")
    env = durable(durable_redis, sink, ROUTER_DISPATCH_CONCURRENCY="2")
    first = start_router(**env)
    dead = h.http("GET", f"{first.url}/health/details")[1]["durable_queue"]["consumer"]
    ids = [f"it-{i}" for i in range(20)]
    assert [h.route(first, h.message(i))[1]["outcome"] for i in range(20)] == ["queued"] * 20
    first.kill()  # SIGKILL: no drain, nothing acknowledged for what was in flight
    assert sum(delivered(book).values()) < 20  # most were still queued

    second = start_router(**env)
    h.wait_until(lambda: set(delivered(book)) == set(ids), timeout=40, what="every id delivered")
    h.wait_until(lambda: pool_depth(second, h) == 0, what="every entry acknowledged")
    assert set(delivered(book).values()) == {1}
    # The entries the killed router was holding were claimed, not lost; a redelivery of one the sink had
    # already taken (the router died before XACK) is a counted duplicate, never a second delivery.
    assert h.metric(second, "msgroute_queue_claimed_total") >= 1
    duplicates = [r for r in ledger(book) if r["event"] == "duplicate"]
    assert h.sink_stats(sink)["duplicates"] == len(duplicates)
    assert {r["message_id"] for r in duplicates} <= set(ids)
    # Its consumer, holding nothing any more and reading nothing, is forgotten (after 10 claim times).
    h.wait_until(lambda: dead not in consumers(durable_redis.url), timeout=30, what="the dead consumer gone")
    assert h.http("GET", f"{second.url}/health/details")[1]["durable_queue"]["consumer"] in consumers(
        durable_redis.url
    )


def test_sigterm_with_a_short_drain_loses_nothing(
    durable_redis: Any, ledger_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    # Deliveries outlast the drain: what the router holds beyond the two in flight is left at its end.
    sink, book = ledger_sink("slow", "--latency-ms", "1000")
    env = durable(durable_redis, sink, ROUTER_DISPATCH_CONCURRENCY="2", ROUTER_DRAIN_TIMEOUT_S="0.1")
    first = start_router(**env)
    # Ten priorities: ten streams, so the router holds messages beyond those in flight when it stops.
    for i in range(20):
        assert h.route(first, h.message(i, priority=i % 10))[1]["outcome"] == "queued"
    code, log = first.stop()
    assert code == 0
    lines = records(log)
    assert not [r for r in lines if r.get("outcome") == "abandoned"]
    released = {r["message_id"] for r in lines if r.get("outcome") == "released"}
    assert released and all(r["trace_id"] for r in lines if r.get("outcome") == "released")

    second = start_router(**env)
    h.wait_until(lambda: len(delivered(book)) == 20, timeout=40, what="every id delivered")
    h.wait_until(lambda: pool_depth(second, h) == 0, what="every entry acknowledged")
    assert set(delivered(book).values()) == {1}
    assert released <= set(delivered(book))
    assert h.metric(second, "msgroute_queue_claimed_total") >= len(released)


def test_redis_killed_and_restarted_with_aof_loses_nothing(
    durable_redis: Any, ledger_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink, book = ledger_sink("slow", "--latency-ms", "100")
    router = start_router(**durable(durable_redis, sink, ROUTER_DISPATCH_CONCURRENCY="2"))
    for i in range(20):
        assert h.route(router, h.message(i))[1]["outcome"] == "queued"
    durable_redis.kill()
    status, body, headers = h.route(router, h.message("during"))
    assert (status, body["detail"], headers["retry-after"]) == (503, "durable queue unavailable", "1")
    durable_redis.start()

    def retried(i: int | str) -> str:
        """A client retrying a 503 with the same id until it gets an answer."""
        answers: list[dict[str, Any]] = []
        h.wait_until(lambda: answers.append(h.route(router, h.message(i))[1]) or "outcome" in answers[-1])
        return str(answers[-1]["outcome"])

    assert retried("during") == "queued"
    for i in range(20, 30):
        assert retried(i) == "queued"
    h.wait_until(lambda: len(delivered(book)) == 31, timeout=40, what="every id delivered")
    h.wait_until(lambda: pool_depth(router, h) == 0, timeout=20, what="every entry acknowledged")
    assert set(delivered(book).values()) == {1}
    assert h.sink_stats(sink)["duplicates"] == len([r for r in ledger(book) if r["event"] == "duplicate"])


def test_a_client_retry_with_the_same_id_is_never_delivered_twice(
    durable_redis: Any, ledger_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink, book = ledger_sink("s")
    legacy = start_router(ROUTER_VERSION="1.9.0", **durable(durable_redis, sink))
    new = start_router(ROUTER_VERSION="2.0.0", **durable(durable_redis, sink))
    first = h.route(legacy, h.message("once", "alert"))[1]
    again = [h.route(router, h.message("once", "alert"))[1] for router in (legacy, new, new)]
    batch = h.http("POST", f"{new.url}/v1/route/batch", {"messages": [h.message("once", "alert")]})[1]
    assert first["outcome"] == "queued"
    assert [d["outcome"] for d in again] == ["duplicate"] * 3
    assert batch["results"][0]["decision"]["outcome"] == "duplicate"
    assert {d["engine_version"] for d in again} == {"1.9.0"}
    h.wait_until(lambda: delivered(book) == Counter({"it-once": 1}), what="the delivery")
    h.wait_until(lambda: pool_depth(new, h) == 0, what="acknowledged")
    assert h.sink_stats(sink)["received"] == 1 and h.sink_stats(sink)["duplicates"] == 0


def test_ttl_expiry_is_counted_acknowledged_and_logged_with_the_trace(
    durable_redis: Any, ledger_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink, book = ledger_sink("stuck", "--latency-ms", "1000")
    router = start_router(**durable(durable_redis, sink, ROUTER_DISPATCH_CONCURRENCY="1"))
    for i in range(6):
        answer = h.route(router, h.message(i, ttl_ms=300), traceparent=TRACEPARENT)[1]
        assert answer["outcome"] == "queued"

    def outcome(name: str) -> float:
        return h.metric(router, "msgroute_deliveries_total", message_class="tactical", outcome=name)

    h.wait_until(lambda: outcome("expired") + outcome("delivered") == 6, timeout=20, what="every outcome")
    h.wait_until(lambda: pool_depth(router, h) == 0, what="expired entries acknowledged, not left in Redis")
    assert outcome("expired") >= 4  # one worker, 1 s per delivery, 300 ms to live
    assert sum(delivered(book).values()) == outcome("delivered")
    _, log = router.stop()
    expired = [r for r in records(log) if r.get("outcome") == "expired"]
    assert expired and all(r["trace_id"] == TRACE_ID and r["message_id"].startswith("it-") for r in expired)


def test_overflow_is_429_with_retry_after(
    durable_redis: Any, start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink = start_sink("slow", "--latency-ms", "1000")
    router = start_router(
        **durable(durable_redis, sink, ROUTER_QUEUE_CAPACITY="3", ROUTER_DISPATCH_CONCURRENCY="1")
    )
    answers = [h.route(router, h.message(i)) for i in range(8)]
    statuses = [status for status, _, _ in answers]
    # The bound counts every entry not yet acknowledged, the one being delivered included.
    assert statuses[:3] == [200] * 3 and statuses.count(429) >= 4
    rejected = [(body, headers) for status, body, headers in answers if status == 429]
    assert all(int(headers["retry-after"]) >= 1 and "full" in body["detail"] for body, headers in rejected)
    assert h.metric(router, "msgroute_queue_rejected_total", queue="tactical") == statuses.count(429)
    accepted = statuses.count(200)
    h.wait_until(lambda: h.sink_stats(sink)["unique"] == accepted, timeout=20, what="accepted ones delivered")


def test_traceparent_is_passed_on_and_a_malformed_one_replaced(
    durable_redis: Any, ledger_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink, book = ledger_sink("s")
    router = start_router(**durable(durable_redis, sink))
    malformed = "00-ZZf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    h.route(router, h.message("good"), traceparent=TRACEPARENT)
    h.route(router, h.message("bad"), traceparent=malformed)
    h.route(router, h.message("none"))
    h.wait_until(lambda: len(delivered(book)) == 3, what="the deliveries")
    traces = {r["message_id"]: r["trace_id"] for r in ledger(book)}
    assert traces["it-good"] == TRACE_ID
    assert len({traces["it-bad"], traces["it-none"], TRACE_ID}) == 3
    assert all(len(t) == 32 and int(t, 16) for t in (traces["it-bad"], traces["it-none"]))
    assert h.metric(router, "msgroute_traceparent_replaced_total") == 1


def test_shadow_never_delivers_nor_enqueues(
    durable_redis: Any, start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink = start_sink("s")
    shadow = start_router(ROUTER_MODE="shadow", **durable(durable_redis, sink))
    assert {h.route(shadow, h.message(i))[1]["outcome"] for i in range(10)} == {"shadow"}
    h.wait_until(lambda: h.metric(shadow, "msgroute_queue_depth") == 0)
    assert pool_depth(shadow, h) == 0 and h.sink_stats(sink)["received"] == 0
