"""Idempotency shared through a real redis-server: a failover retry on the other engine is not
delivered twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def test_legacy_and_new_share_the_window(
    redis_server: Any, start_sink: Callable[..., Any], start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    sink = start_sink("shared")
    common = {"ROUTER_DESTINATIONS": f"shared={sink.url}/deliver", "ROUTER_REDIS_URL": redis_server.url}
    legacy = start_router(ROUTER_VERSION="1.9.0", **common)
    new = start_router(ROUTER_VERSION="2.0.0", **common)

    first = [h.route(legacy, h.message(i, "alert"))[1] for i in range(10)]
    retried = [h.route(new, h.message(i, "alert"))[1] for i in range(10)]  # nginx failing over per request
    assert {d["outcome"] for d in first} == {"queued"}
    assert {d["outcome"] for d in retried} == {"duplicate"}
    assert [d["engine_version"] for d in retried] == ["1.9.0"] * 10  # the original decision, from legacy
    assert [(d["destination"], d["priority"]) for d in retried] == [
        (d["destination"], d["priority"]) for d in first
    ]

    h.wait_until(lambda: h.sink_stats(sink)["received"] == 10, what="deliveries")
    stats = h.sink_stats(sink, ids=True)
    assert stats["duplicates"] == 0 and len(stats["ids"]) == 10


def test_mirrored_copies_do_not_claim_in_redis(
    redis_server: Any, start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    router = start_router(ROUTER_REDIS_URL=redis_server.url, ROUTER_REDIS_KEY_PREFIX="t:")
    status, body, _ = h.route(router, h.message("m"), **{"X-Msgroute-Mirrored": "1"})
    assert (status, body["outcome"]) == (200, "shadow")
    assert h.route(router, h.message("m"))[1]["outcome"] == "decided"  # live request still owns the id
    assert h.route(router, h.message("m"))[1]["outcome"] == "duplicate"
    details = h.http("GET", f"{router.url}/health/details")[1]
    assert details["idempotency"]["backend"] == "redis"
    assert "url" not in details["idempotency"]


def test_redis_outage_answers_503_not_a_second_delivery(
    redis_server: Any, start_router: Callable[..., Any], h: SimpleNamespace
) -> None:
    router = start_router(ROUTER_REDIS_URL=redis_server.url, ROUTER_REDIS_TIMEOUT_S="0.3")
    assert h.route(router, h.message(1))[0] == 200
    redis_server.kill()
    status, body, headers = h.route(router, h.message(2))
    assert (
        status == 503 and body["detail"] == "idempotency store unavailable" and headers["retry-after"] == "1"
    )
    assert h.metric(router, "msgroute_idempotency_errors_total") >= 1
    assert h.route(router, h.message(3), **{"X-Msgroute-Mirrored": "1"})[0] == 200  # shadow copies still fine


def test_unreachable_redis_fails_the_start() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update(
        PYTHONPATH=str(root),
        ROUTER_HOST="127.0.0.1",
        ROUTER_PORT="1",
        ROUTER_REDIS_URL="redis://127.0.0.1:9/0",
    )
    result = subprocess.run(
        [sys.executable, "-m", "router_app"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3
    assert "cannot reach Redis" in result.stderr


def test_release_withdraws_only_our_own_claim(redis_server: Any) -> None:
    import asyncio

    from router_app.idempotency import RedisStore

    async def scenario() -> tuple[Any, Any, Any]:
        store = RedisStore(redis_server.url, 60, "rel:", 0.5)
        ours, theirs = {"engine_version": "a"}, {"engine_version": "b"}
        try:
            await store.start()
            assert await store.claim("m-1", ours) is None
            await store.release("m-1", ours)
            after_release = await store.lookup("m-1")  # gone: the id is new again
            assert await store.claim("m-1", theirs) is None
            await store.release("m-1", ours)  # not ours any more: kept
            kept = await store.lookup("m-1")
            again = await store.claim("m-1", ours)
            return after_release, kept, again
        finally:
            await store.close()

    after_release, kept, again = asyncio.run(scenario())
    assert after_release is None
    assert kept == {"engine_version": "b"}
    assert again == {"engine_version": "b"}
