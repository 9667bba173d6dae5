"""Metric names, labels and buckets are a contract with the rollout gates; values move as requests do."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from router_app.metrics import status_class

EXPECTED_BUCKETS = [
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.048, 0.05,
    0.06, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, float("inf"),
]  # fmt: skip
DURATION = "msgroute_request_duration_seconds"
REQUESTS = "msgroute_requests_total"
GOOD = {"id": "m-1", "source": "s", "type": "alert"}
MESSAGES = "msgroute_messages_total"


def scrape(client: TestClient) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Parse /metrics as Prometheus does: family name -> samples."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(response.text)
    }


def test_duration_histogram_has_no_labels_and_exact_buckets(client: TestClient) -> None:
    samples = scrape(client)[DURATION]
    buckets = [float(labels["le"]) for name, labels, _ in samples if name == f"{DURATION}_bucket"]
    assert buckets == EXPECTED_BUCKETS
    assert all(set(labels) <= {"le"} for _, labels, _ in samples)
    assert not any(name.endswith("_created") for name, _, _ in samples)


def test_requests_counter_exposes_every_label_combination(client: TestClient) -> None:
    families = scrape(client)
    assert "msgroute_requests" in families  # the parser strips _total from a counter family name
    series = {
        (labels["status_class"], labels["mirrored"]) for name, labels, _ in families["msgroute_requests"]
    }
    assert series == {(c, m) for c in ("2xx", "4xx", "5xx") for m in ("true", "false")}
    assert {name for name, _, _ in families["msgroute_requests"]} == {REQUESTS}


def test_build_info_and_process_memory(make_client: Callable[..., TestClient]) -> None:
    make_client(version="1.0.0", mode="live")
    families = scrape(make_client(version="2.0.0", mode="shadow"))
    assert families["msgroute_build_info"] == [
        ("msgroute_build_info", {"version": "2.0.0", "mode": "shadow"}, 1.0)
    ]
    assert families["process_resident_memory_bytes"][0][2] > 0


def test_route_requests_are_counted_by_class_and_mirroring(
    client: TestClient, sample: Callable[..., float]
) -> None:
    before = {
        key: sample(REQUESTS, status_class=key[0], mirrored=key[1])
        for key in [("2xx", "false"), ("2xx", "true"), ("4xx", "false"), ("4xx", "true")]
    }
    count_before = sample(f"{DURATION}_count")

    client.post("/v1/route", json=GOOD)
    client.post("/v1/route", json=GOOD)
    client.post("/v1/route", json=GOOD, headers={"X-Msgroute-Mirrored": "1"})
    client.post("/v1/route", json={"id": ""})
    client.post("/v1/route", content=b"{", headers={"X-Msgroute-Mirrored": "1"})
    client.post("/v1/route", content=b"x" * 70_000)
    client.get("/health")
    client.get("/v1/route")  # 405 is bad input too

    def delta(key: tuple[str, str]) -> float:
        return sample(REQUESTS, status_class=key[0], mirrored=key[1]) - before[key]

    assert delta(("2xx", "false")) == 2
    assert delta(("2xx", "true")) == 1
    assert delta(("4xx", "false")) == 3
    assert delta(("4xx", "true")) == 1
    assert sample(f"{DURATION}_count") - count_before == 7  # /health is not a route request


@pytest.mark.parametrize("value", ["0", "true", "", "11"])
def test_only_header_value_1_marks_mirrored(
    client: TestClient, sample: Callable[..., float], value: str
) -> None:
    before = sample(REQUESTS, status_class="2xx", mirrored="false")
    client.post("/v1/route", json=GOOD, headers={"X-Msgroute-Mirrored": value})
    assert sample(REQUESTS, status_class="2xx", mirrored="false") - before == 1


def test_shadow_mode_counts_everything_as_mirrored(
    make_client: Callable[..., TestClient], sample: Callable[..., float]
) -> None:
    client = make_client(mode="shadow")
    before = sample(REQUESTS, status_class="2xx", mirrored="true")
    client.post("/v1/route", json=GOOD)
    client.post("/v1/route", json=GOOD, headers={"X-Msgroute-Mirrored": "0"})
    assert sample(REQUESTS, status_class="2xx", mirrored="true") - before == 2


def test_server_errors_are_counted_as_5xx(
    client: TestClient, sample: Callable[..., float], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(*_: object) -> None:
        raise RuntimeError("engine broke")

    monkeypatch.setattr(client.app.state.engine, "submit", boom)
    before = sample(REQUESTS, status_class="5xx", mirrored="false")
    assert client.post("/v1/route", json=GOOD).status_code == 500
    assert sample(REQUESTS, status_class="5xx", mirrored="false") - before == 1


def test_duration_includes_injected_latency(
    make_client: Callable[..., TestClient], sample: Callable[..., float]
) -> None:
    client = make_client(fault_injection=True, fault_latency_ms=60.0)
    under_50ms = sample(f"{DURATION}_bucket", le="0.05")
    total = sample(f"{DURATION}_sum")
    count = sample(f"{DURATION}_count")
    assert client.post("/v1/route", json=GOOD).status_code == 200
    assert sample(f"{DURATION}_count") - count == 1
    assert sample(f"{DURATION}_bucket", le="0.05") == under_50ms
    assert sample(f"{DURATION}_sum") - total >= 0.06


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (201, "2xx"), (400, "4xx"), (413, "4xx"), (500, "5xx"), (503, "5xx")],
)
def test_status_class(status: int, expected: str) -> None:
    assert status_class(status) == expected


def test_messages_are_counted_by_class_and_outcome(
    make_client: Callable[..., TestClient], sample: Callable[..., float]
) -> None:
    client = make_client()
    keys = [
        ("strategic", "decided"),
        ("tactical", "decided"),
        ("strategic", "duplicate"),
        ("tactical", "shadow"),
    ]
    before = {k: sample(MESSAGES, message_class=k[0], outcome=k[1]) for k in keys}
    client.post("/v1/route", json={**GOOD, "id": "c-1"})
    client.post("/v1/route", json={**GOOD, "id": "c-1"})
    client.post("/v1/route", json={**GOOD, "id": "c-2", "type": "status"})
    client.post(
        "/v1/route", json={**GOOD, "id": "c-3", "type": "status"}, headers={"X-Msgroute-Mirrored": "1"}
    )
    after = {k: sample(MESSAGES, message_class=k[0], outcome=k[1]) - before[k] for k in keys}
    assert after == {k: 1 for k in keys}


def test_per_class_latency_histogram_is_separate(client: TestClient, sample: Callable[..., float]) -> None:
    name = "msgroute_message_duration_seconds_count"
    before = sample(name, message_class="strategic")
    client.post("/v1/route", json={**GOOD, "id": "h-1"})
    assert sample(name, message_class="strategic") - before == 1
    families = scrape(client)
    assert all(set(labels) <= {"le"} for _, labels, _ in families[DURATION])


def test_engine_gauges_are_exported(make_client: Callable[..., TestClient]) -> None:
    families = scrape(make_client(destinations=("n1", "n2")))
    assert {labels["destination"]: v for _, labels, v in families["msgroute_breaker_state"]} == {
        "n1": 0,
        "n2": 0,
    }
    depth = {labels["queue"]: v for _, labels, v in families["msgroute_queue_depth"]}
    assert depth == {"strategic": 0, "tactical": 0}
    assert {labels["queue"] for _, labels, _ in families["msgroute_queue_capacity"]} == {
        "strategic",
        "tactical",
    }
    assert "msgroute_queue_expired" in families and "msgroute_queue_rejected" in families
    flags = {labels["flag"]: v for _, labels, v in families["msgroute_feature_flag_percent"]}
    assert flags == {"least_loaded": 100.0, "predictive_load": 100.0}
    assert families["msgroute_fault_injection_enabled"][0][2] == 0
