"""Fault injection: off by default, ignored unless enabled, and an exact counter-based error pattern."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict

import pytest
from fastapi.testclient import TestClient

from router_app.config import Settings, load_settings
from router_app.faults import FaultInjector, build_injector, should_fail

GOOD = {"id": "m-1", "source": "s", "type": "status"}


@pytest.mark.parametrize(
    ("rate", "n", "failures"), [(0.0, 1000, 0), (0.25, 1000, 250), (0.1, 100, 10), (1.0, 7, 7)]
)
def test_failures_are_exactly_the_configured_share(rate: float, n: int, failures: int) -> None:
    assert sum(should_fail(i, rate) for i in range(1, n + 1)) == failures


def test_failures_are_spread_evenly() -> None:
    assert [should_fail(i, 0.5) for i in range(1, 7)] == [False, True] * 3
    assert [should_fail(i, 0.25) for i in range(1, 9)] == [False, False, False, True] * 2


def test_injector_is_absent_by_default() -> None:
    assert build_injector(load_settings({})) is None
    ignored = load_settings({"ROUTER_FAULT_LATENCY_MS": "500", "ROUTER_FAULT_ERROR_RATE": "1"})
    assert build_injector(ignored) is None
    assert build_injector(Settings(fault_injection=True)) is None  # on, but nothing to inject


def test_injector_sleeps_the_latency() -> None:
    injector = FaultInjector(latency_ms=50, error_rate=0)
    started = time.perf_counter()
    failed = asyncio.run(injector.apply())
    assert failed is False
    assert time.perf_counter() - started >= 0.05


def test_fault_env_without_switch_changes_nothing(make_client: Callable[..., TestClient]) -> None:
    settings = load_settings({"ROUTER_FAULT_ERROR_RATE": "1", "ROUTER_FAULT_LATENCY_MS": "1000"})
    client = make_client(**asdict(settings))
    started = time.perf_counter()
    statuses = [client.post("/v1/route", json=GOOD).status_code for _ in range(20)]
    assert statuses == [200] * 20
    assert time.perf_counter() - started < 10  # 20 requests at 1 s each would take 20 s


def test_error_rate_answers_503_in_pattern(make_client: Callable[..., TestClient]) -> None:
    client = make_client(fault_injection=True, fault_error_rate=0.5)
    responses = [client.post("/v1/route", json=GOOD) for _ in range(10)]
    assert [r.status_code for r in responses] == [200, 503] * 5
    assert responses[1].json() == {"detail": "fault injected"}
    assert responses[1].headers["x-router-version"] == "dev"


def test_bad_input_stays_4xx_under_fault_injection(make_client: Callable[..., TestClient]) -> None:
    client = make_client(fault_injection=True, fault_error_rate=1.0)
    assert client.post("/v1/route", json={"id": "x"}).status_code == 422
    assert client.post("/v1/route", json=GOOD).status_code == 503
