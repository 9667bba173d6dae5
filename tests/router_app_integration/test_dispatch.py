"""Dispatch to real sinks: exactly-once delivery, circuit breaker, shadow mode, overflow, drain on SIGTERM."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any


def destinations(*sinks: Any) -> str:
    return ",".join(f"{s.proc.args[s.proc.args.index('--name') + 1]}={s.url}/deliver" for s in sinks)


def test_messages_are_delivered_exactly_once(
    start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    a, b = start_sink("a"), start_sink("b")
    router = start_router(ROUTER_DESTINATIONS=destinations(a, b))
    answers = [h.route(router, h.message(i % 40, "alert" if i % 3 == 0 else "telemetry")) for i in range(80)]
    assert all(status == 200 for status, _, _ in answers)
    assert [body["outcome"] for _, body, _ in answers[:40]] == ["queued"] * 40
    assert {body["outcome"] for _, body, _ in answers[40:]} == {"duplicate"}
    h.wait_until(lambda: h.sink_stats(a)["received"] + h.sink_stats(b)["received"] >= 40, what="deliveries")
    ids: dict[str, int] = {**h.sink_stats(a, ids=True)["ids"], **h.sink_stats(b, ids=True)["ids"]}
    assert sorted(ids) == sorted(f"it-{i}" for i in range(40))
    assert set(ids.values()) == {1}
    assert h.sink_stats(a)["received"] > 0 and h.sink_stats(b)["received"] > 0  # load is spread
    assert h.metric(router, "msgroute_deliveries_total", message_class="strategic", outcome="delivered") == 14


def test_decision_names_the_destination_that_receives(
    start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    a, b = start_sink("a"), start_sink("b")
    router = start_router(ROUTER_DESTINATIONS=destinations(a, b))
    chosen = {
        body["message_id"]: body["destination"]
        for _, body, _ in (h.route(router, h.message(i)) for i in range(10))
    }
    h.wait_until(lambda: h.sink_stats(a)["received"] + h.sink_stats(b)["received"] == 10, what="deliveries")
    received = {i: "a" for i in h.sink_stats(a, ids=True)["ids"]} | {
        i: "b" for i in h.sink_stats(b, ids=True)["ids"]
    }
    assert received == chosen


def test_breaker_opens_then_recovers(
    start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink = start_sink("only")
    router = start_router(
        ROUTER_DESTINATIONS=destinations(sink),
        ROUTER_BREAKER_FAILURE_THRESHOLD="3",
        ROUTER_BREAKER_RECOVERY_S="1",
        ROUTER_DISPATCH_MAX_ATTEMPTS="1",
    )
    h.http("POST", f"{sink.url}/control", {"fail_status": 503})
    for i in range(3):
        h.route(router, h.message(f"f{i}"))
    h.wait_until(
        lambda: h.metric(router, "msgroute_breaker_state", destination="only") == 2, what="breaker open"
    )
    details = h.http("GET", f"{router.url}/health/details")[1]
    assert details["breakers"]["only"]["state"] == "open"
    status, body, headers = h.route(router, h.message("while-open"))
    assert status == 503 and int(headers["retry-after"]) >= 1 and "breaker" in body["detail"]

    h.http("POST", f"{sink.url}/control", {"fail_status": 0})
    h.wait_until(lambda: h.route(router, h.message("probe"))[0] == 200, timeout=5, what="half-open")
    h.wait_until(
        lambda: h.metric(router, "msgroute_breaker_state", destination="only") == 0, what="breaker closed"
    )
    assert h.metric(router, "msgroute_breaker_transitions_total", destination="only", state="open") == 1
    assert h.metric(router, "msgroute_deliveries_total", message_class="tactical", outcome="failed") == 3
    assert "probe" in json.dumps(h.sink_stats(sink, ids=True)["ids"])


def test_shadow_mode_never_dispatches(
    start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink = start_sink("s")
    shadow = start_router(ROUTER_DESTINATIONS=destinations(sink), ROUTER_MODE="shadow")
    live = start_router(ROUTER_DESTINATIONS=destinations(sink))
    outcomes = {h.route(shadow, h.message(i))[1]["outcome"] for i in range(20)}
    mirrored = {
        h.route(live, h.message(i), **{"X-Msgroute-Mirrored": "1"})[1]["outcome"] for i in range(20, 40)
    }
    assert outcomes == {"shadow"} and mirrored == {"shadow"}
    h.route(live, h.message("real"))  # a live message is delivered: proves the sink is wired
    h.wait_until(lambda: h.sink_stats(sink)["received"] == 1, what="the live delivery")
    assert list(h.sink_stats(sink, ids=True)["ids"]) == ["it-real"]
    assert h.metric(shadow, "msgroute_dispatch_attempts_total", destination="s", result="ok") == 0


def test_overflow_is_429_with_retry_after_never_silent(
    start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink = start_sink("slow", "--latency-ms", "1000")
    router = start_router(
        ROUTER_DESTINATIONS=destinations(sink),
        ROUTER_QUEUE_CAPACITY="3",
        ROUTER_DISPATCH_CONCURRENCY="1",
        ROUTER_DISPATCH_TIMEOUT_S="5",
    )
    answers = [h.route(router, h.message(i)) for i in range(8)]  # 1 in flight + 3 queued, the rest refused
    statuses = [status for status, _, _ in answers]
    assert set(statuses) == {200, 429} and statuses.count(429) >= 3
    rejected = [(body, headers) for status, body, headers in answers if status == 429]
    assert all(int(headers["retry-after"]) >= 1 for _, headers in rejected)
    assert all("full" in body["detail"] for body, _ in rejected)
    accepted = statuses.count(200)
    assert h.metric(router, "msgroute_queue_rejected_total", queue="tactical") == statuses.count(429)
    h.wait_until(
        lambda: h.sink_stats(sink)["received"] == accepted, timeout=20, what="accepted ones delivered"
    )


def test_sigterm_delivers_what_is_queued(
    start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink = start_sink("drain", "--latency-ms", "200")  # 30 messages, 2 at a time: 3 s of deliveries
    router = start_router(ROUTER_DESTINATIONS=destinations(sink), ROUTER_DISPATCH_CONCURRENCY="2")
    for i in range(30):
        assert h.route(router, h.message(i))[0] == 200
    assert h.sink_stats(sink)["received"] < 30  # most are still queued
    code, log = router.stop()
    assert code == 0
    assert h.sink_stats(sink)["received"] == 30
    records = [json.loads(line) for line in log.splitlines()]
    assert not [r for r in records if r["msg"].startswith("messages abandoned")]


def test_sigterm_reports_what_it_could_not_deliver(
    start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink = start_sink("stuck", "--latency-ms", "2000")
    router = start_router(
        ROUTER_DESTINATIONS=destinations(sink),
        ROUTER_DISPATCH_CONCURRENCY="1",
        ROUTER_DISPATCH_TIMEOUT_S="5",
        ROUTER_DRAIN_TIMEOUT_S="0.5",
    )
    for i in range(4):
        h.route(router, h.message(i))
    code, log = router.stop()
    assert code == 0
    records = [json.loads(line) for line in log.splitlines()]
    summary = [r for r in records if r["msg"] == "messages abandoned at shutdown"]
    # The delivery in flight at the deadline ends with its real outcome (the sink answers within the attempt
    # timeout); the three still queued are abandoned, and every one of their ids is logged.
    assert summary and summary[0]["count"] == 3
    abandoned = {r["message_id"] for r in records if r.get("outcome") == "abandoned"}
    assert abandoned == {"it-1", "it-2", "it-3"}
    assert h.sink_stats(sink)["received"] == 1


def test_logs_are_json_with_request_ids(
    start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    router = start_router(ROUTER_DESTINATIONS="gone=http://127.0.0.1:9/x", ROUTER_DISPATCH_MAX_ATTEMPTS="1")
    h.route(router, h.message("lost"), **{"X-Request-Id": "req-42"})
    h.wait_until(
        lambda: h.metric(router, "msgroute_deliveries_total", message_class="tactical", outcome="failed") == 1
    )
    _, log = router.stop()
    records = [json.loads(line) for line in log.splitlines()]
    failed = [r for r in records if r["msg"].startswith("message failed")]
    assert failed and failed[0]["message_id"] == "it-lost" and failed[0]["request_id"] == "req-42"


def test_concurrent_duplicates_dispatch_once(
    start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink = start_sink("dup")
    router = start_router(ROUTER_DESTINATIONS=destinations(sink))
    outcomes: list[str] = []

    def send() -> None:
        outcomes.append(h.route(router, h.message("same"))[1]["outcome"])

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["duplicate"] * 9 + ["queued"]
    h.wait_until(lambda: h.sink_stats(sink)["received"] == 1)
