"""Readiness (starting, ready, draining) and graceful drain of a real ``python -m router_app``."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi.testclient import TestClient

from router_app.app import create_app
from router_app.config import Settings
from router_app.lifecycle import DRAINING, READY, STARTING, Lifecycle
from router_app.server import DrainingServer


def test_lifecycle_states() -> None:
    lifecycle = Lifecycle()
    assert (lifecycle.state, lifecycle.ready) == (STARTING, False)
    lifecycle.mark_ready()
    assert (lifecycle.state, lifecycle.ready) == (READY, True)
    lifecycle.begin_drain()
    lifecycle.mark_ready()  # a late startup hook must not undo a drain
    assert (lifecycle.state, lifecycle.ready) == (DRAINING, False)


def test_ready_is_503_before_startup_and_after_drain() -> None:
    app = create_app(Settings())
    starting = TestClient(app).get("/ready")  # no lifespan run: still starting
    assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        app.state.lifecycle.begin_drain()
        draining = client.get("/ready")
        assert (draining.status_code, draining.json()) == (503, {"status": "draining"})
        assert client.get("/health").status_code == 200  # alive while draining


def test_exit_signal_starts_drain() -> None:
    app = create_app(Settings())
    server = DrainingServer(uvicorn.Config(app), app.state.lifecycle)
    app.state.lifecycle.mark_ready()
    server.handle_exit(signal.SIGTERM, None)
    assert app.state.lifecycle.state == DRAINING
    assert server.should_exit is True


def test_sigterm_finishes_in_flight_requests(start_router: Callable[..., Any]) -> None:
    router = start_router(ROUTER_VERSION="4.2", ROUTER_FAULT_INJECTION="on", ROUTER_FAULT_LATENCY_MS="1500")
    result: dict[str, Any] = {}

    def slow_request() -> None:
        request = urllib.request.Request(
            f"{router.url}/v1/route",
            data=json.dumps({"id": "in-flight", "source": "s", "type": "alert"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result["status"] = response.status
            result["body"] = json.load(response)

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.5)  # the request is now sleeping inside the handler
    started = time.monotonic()
    code, log = router.stop()
    thread.join(timeout=10)

    assert (
        result == {"status": 200, "body": result.get("body")} and result["body"]["message_id"] == "in-flight"
    )
    assert code == 0
    assert time.monotonic() - started < 10
    records = [json.loads(line) for line in log.splitlines()]  # every log line is JSON
    messages = [r["msg"] for r in records]
    assert "starting router" in messages and messages[-1] == "router stopped"
    assert "fault injection is ON: latency 1500 ms, error rate 0" in messages
    start = next(r for r in records if r["msg"] == "starting router")
    assert start["config"]["version"] == "4.2"
