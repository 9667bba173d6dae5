"""Fault injection: off by default, ignored unless enabled, exact error pattern, per-class latency, memory
growth, and the token-protected admin endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict

import pytest
from fastapi.testclient import TestClient

from router_app.config import Settings, load_settings
from router_app.faults import FaultInjector, should_fail

GOOD = {"id": "m-1", "source": "s", "type": "status"}
TOKEN = "t0ken-for-the-tests-0123456789"


def good(i: int, msg_type: str = "status") -> dict[str, str]:
    return {**GOOD, "id": f"m-{i}", "type": msg_type}


@pytest.mark.parametrize(
    ("rate", "n", "failures"), [(0.0, 1000, 0), (0.25, 1000, 250), (0.1, 100, 10), (1.0, 7, 7)]
)
def test_failures_are_exactly_the_configured_share(rate: float, n: int, failures: int) -> None:
    assert sum(should_fail(i, rate) for i in range(1, n + 1)) == failures


def test_failures_are_spread_evenly() -> None:
    assert [should_fail(i, 0.5) for i in range(1, 7)] == [False, True] * 3
    assert [should_fail(i, 0.25) for i in range(1, 9)] == [False, False, False, True] * 2


def test_injector_is_inactive_by_default() -> None:
    assert FaultInjector.from_settings(load_settings({})).active is False
    ignored = load_settings({"ROUTER_FAULT_LATENCY_MS": "500", "ROUTER_FAULT_ERROR_RATE": "1"})
    assert FaultInjector.from_settings(ignored).active is False
    assert FaultInjector.from_settings(Settings(fault_injection=True)).active is False  # on, nothing to do


def test_injector_sleeps_the_latency() -> None:
    injector = FaultInjector(enabled=True, latency_ms=50)
    started = time.perf_counter()
    failed = asyncio.run(injector.apply("tactical"))
    assert failed is False
    assert time.perf_counter() - started >= 0.05


def test_class_latency_replaces_the_fixed_one() -> None:
    injector = FaultInjector(enabled=True, latency_ms=10, latency_ms_by_class={"strategic": 40})
    assert injector.latency_s("strategic") == 0.04
    assert injector.latency_s("tactical") == 0.01


def test_memory_growth_is_capped_and_freed() -> None:
    injector = FaultInjector(enabled=True, memory_growth_kb=512, memory_max_mb=2)
    for _ in range(10):
        asyncio.run(injector.apply("tactical"))
    assert injector.describe()["memory_grown_bytes"] == 2 * 1024 * 1024
    injector.configure(enabled=False)
    assert injector.describe()["memory_grown_bytes"] == 0
    assert injector.active is False


def test_fault_env_without_switch_changes_nothing(make_client: Callable[..., TestClient]) -> None:
    settings = load_settings({"ROUTER_FAULT_ERROR_RATE": "1", "ROUTER_FAULT_LATENCY_MS": "1000"})
    client = make_client(**asdict(settings))
    statuses = [client.post("/v1/route", json=good(i)).status_code for i in range(20)]
    assert statuses == [200] * 20
    assert client.get("/health/details").json()["faults"]["active"] is False


def test_error_rate_answers_503_in_pattern(make_client: Callable[..., TestClient]) -> None:
    client = make_client(fault_injection=True, fault_error_rate=0.5)
    responses = [client.post("/v1/route", json=good(i)) for i in range(10)]
    assert [r.status_code for r in responses] == [200, 503] * 5
    assert responses[1].json() == {"detail": "fault injected"}
    assert responses[1].headers["x-router-version"] == "dev"


def test_bad_input_stays_4xx_under_fault_injection(make_client: Callable[..., TestClient]) -> None:
    client = make_client(fault_injection=True, fault_error_rate=1.0)
    assert client.post("/v1/route", json={"id": "x"}).status_code == 422
    assert client.post("/v1/route", json=GOOD).status_code == 503


def test_admin_endpoint_is_absent_without_a_token(client: TestClient) -> None:
    response = client.put("/admin/faults", json={"enabled": True, "error_rate": 1})
    assert response.status_code == 404
    assert client.post("/v1/route", json=GOOD).status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0000000000", f"Basic {TOKEN}", TOKEN])
def test_admin_endpoint_refuses_a_wrong_token(
    make_client: Callable[..., TestClient], header: str | None
) -> None:
    client = make_client(admin_token=TOKEN)
    headers = {"Authorization": header} if header else {}
    response = client.put("/admin/faults", json={"enabled": True, "error_rate": 1}, headers=headers)
    assert response.status_code == 401
    assert client.get("/admin/faults", headers=headers).status_code == 401
    assert client.post("/v1/route", json=GOOD).status_code == 200  # nothing changed


def test_admin_endpoint_turns_faults_on_and_off(make_client: Callable[..., TestClient]) -> None:
    client = make_client(admin_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    on = client.put("/admin/faults", json={"enabled": True, "error_rate": 1.0}, headers=auth)
    assert on.status_code == 200 and on.json()["active"] is True
    assert client.post("/v1/route", json=good(1)).status_code == 503
    assert client.get("/admin/faults", headers=auth).json()["error_rate"] == 1.0
    off = client.delete("/admin/faults", headers=auth)
    assert off.json()["active"] is False
    assert client.post("/v1/route", json=good(2)).status_code == 200


def test_admin_update_is_validated(make_client: Callable[..., TestClient]) -> None:
    client = make_client(admin_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.put("/admin/faults", json={"error_rate": 2}, headers=auth).status_code == 422
    assert (
        client.put("/admin/faults", json={"latency_ms_by_class": {"nope": 5}}, headers=auth).status_code
        == 422
    )
    assert client.put("/admin/faults", json={"colour": 1}, headers=auth).status_code == 422


def test_a_class_error_rate_fails_only_that_class_and_exactly():
    import asyncio

    from router_app.faults import FaultInjector

    injector = FaultInjector(enabled=True, error_rate_by_class={"strategic": 1.0})
    outcomes = [asyncio.run(injector.apply(cls)) for cls in ["strategic", "tactical"] * 50]
    assert outcomes[0::2] == [True] * 50
    assert outcomes[1::2] == [False] * 50
    assert injector.describe()["error_rate_by_class"] == {"strategic": 1.0}


def test_class_error_rates_come_from_env_and_need_fault_injection():
    from router_app.config import load_settings

    on = load_settings({"ROUTER_FAULT_INJECTION": "on", "ROUTER_FAULT_ERROR_RATE_BY_CLASS": "strategic=0.5"})
    assert on.fault_error_rate_by_class == {"strategic": 0.5}
    off = load_settings({"ROUTER_FAULT_ERROR_RATE_BY_CLASS": "strategic=0.5"})
    assert off.fault_error_rate_by_class == {}
