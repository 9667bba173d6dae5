"""HTTP contract: route answers, bad input always 4xx, version headers on every answer, health endpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router_app.models import RouteDecision

JSON = {"content-type": "application/json"}


def message(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "m-1", "source": "sensor-gateway", "type": "telemetry"}
    body.update(overrides)
    return body


def test_route_strategic_message(client: TestClient) -> None:
    response = client.post("/v1/route", json=message(id="a-1", type="alert", payload={"temp": 99}))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "message_id": "a-1",
        "classification": "strategic",
        "priority": 1,
        "queue": "strategic",
        "destination": "dest-a",
        "engine_version": "dev",
        "mode": "live",
        "rule": "strategic-types",
        "explanation": "type=alert",
        "strategy": "least_loaded",
        "outcome": "decided",
    }


def test_route_tactical_message_with_priority_hint(client: TestClient) -> None:
    response = client.post("/v1/route", json=message(type="status", priority=0, ttl_ms=30000))
    body = RouteDecision.model_validate(response.json())
    assert (body.classification, body.priority, body.queue) == ("tactical", 0, "tactical")
    assert body.rule == "status-updates"


def test_destinations_round_robin(make_client: Callable[..., TestClient]) -> None:
    client = make_client(destinations=("n1", "n2", "n3"))
    seen = [client.post("/v1/route", json=message(id=f"m{i}")).json()["destination"] for i in range(6)]
    assert seen == ["n1", "n2", "n3", "n1", "n2", "n3"]


def test_version_and_mode_are_reported(make_client: Callable[..., TestClient]) -> None:
    client = make_client(version="7.0.2", mode="shadow")
    routed = client.post("/v1/route", json=message())
    assert routed.json()["engine_version"] == "7.0.2"
    assert routed.json()["mode"] == "shadow"
    assert client.get("/version").json() == {"version": "7.0.2", "mode": "shadow"}


def test_id_of_128_chars_is_accepted(client: TestClient) -> None:
    assert client.post("/v1/route", json=message(id="x" * 128)).status_code == 200


BAD_JSON_BODIES = {
    "truncated": b'{"id": "a", "source": "s", ',
    "empty": b"",
    "not utf-8": b'{"id": "\xff\xfe", "source": "s", "type": "t"}',
    "trailing garbage": b'{"id": "a", "source": "s", "type": "t"} x',
    "deep nesting": b'{"id": "a", "source": "s", "type": "t", "payload": {"x": '
    + b"[" * 5000
    + b"]" * 5000
    + b"}}",
    "huge number": b'{"id": "a", "source": "s", "type": "t", "priority": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("body", BAD_JSON_BODIES.values(), ids=BAD_JSON_BODIES.keys())
def test_malformed_json_is_400(client: TestClient, body: bytes) -> None:
    response = client.post("/v1/route", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"][0]["type"] == "json_invalid"


SCHEMA_VIOLATIONS = {
    "array": [],
    "string": "hello",
    "number": 42,
    "missing id": {"source": "s", "type": "t"},
    "missing source": {"id": "a", "type": "t"},
    "missing type": {"id": "a", "source": "s"},
    "empty id": message(id=""),
    "id too long": message(id="x" * 129),
    "id not a string": message(id=123),
    "unknown field": message(colour="red"),
    "priority too high": message(priority=10),
    "priority negative": message(priority=-1),
    "priority as string": message(priority="5"),
    "priority as bool": message(priority=True),
    "priority as float": message(priority=1.5),
    "ttl negative": message(ttl_ms=-5),
    "ttl as string": message(ttl_ms="1000"),
    "payload not an object": message(payload=[1, 2]),
    "type not a string": message(type=["alert"]),
}


@pytest.mark.parametrize("body", SCHEMA_VIOLATIONS.values(), ids=SCHEMA_VIOLATIONS.keys())
def test_schema_violation_is_422(client: TestClient, body: Any) -> None:
    response = client.post("/v1/route", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail and all({"type", "loc", "msg"} == set(item) for item in detail)


def test_unknown_field_is_named(client: TestClient) -> None:
    detail = client.post("/v1/route", json=message(colour="red")).json()["detail"]
    assert detail == [{"type": "extra_forbidden", "loc": ["colour"], "msg": "Extra inputs are not permitted"}]


def test_rejected_input_is_not_echoed(client: TestClient) -> None:
    response = client.post("/v1/route", json=message(id="secret-" + "x" * 200))
    assert response.status_code == 422
    assert "secret-" not in response.text


def test_oversized_body_is_413(client: TestClient) -> None:
    big = message(payload={"blob": "x" * 70_000})
    response = client.post("/v1/route", json=big)
    assert response.status_code == 413
    assert "65536" in response.json()["detail"]


def test_oversized_chunked_body_is_413(client: TestClient) -> None:
    chunks = (b"x" * 1024 for _ in range(100))  # no Content-Length: the limit applies while streaming
    response = client.post("/v1/route", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_body_limit_is_configurable(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=512)
    assert client.post("/v1/route", json=message(payload={"x": "y" * 600})).status_code == 413
    assert client.post("/v1/route", json=message(payload={"x": "y" * 100})).status_code == 200


def test_json_null_is_422(client: TestClient) -> None:
    response = client.post("/v1/route", content=b"null", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_wrong_method_is_405(client: TestClient) -> None:
    assert client.get("/v1/route").status_code == 405


def test_engine_failure_is_500_with_headers(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*_: object) -> None:
        raise RuntimeError("engine broke")

    monkeypatch.setattr(client.app.state.engine, "submit", boom)
    response = client.post("/v1/route", json=message())
    assert response.status_code == 500
    assert response.headers["x-router-version"] == "dev"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/v1/route", {"json": message()}, 200),
        ("post", "/v1/route", {"json": {"id": ""}}, 422),
        ("post", "/v1/route", {"content": b"{", "headers": JSON}, 400),
        ("get", "/health", {}, 200),
        ("get", "/ready", {}, 200),
        ("get", "/version", {}, 200),
        ("get", "/metrics", {}, 200),
        ("get", "/openapi.json", {}, 200),
        ("get", "/nowhere", {}, 404),
    ],
)
def test_every_answer_carries_version_headers(
    make_client: Callable[..., TestClient], method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    client = make_client(version="9.9.9", mode="shadow")
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    assert response.headers["x-router-version"] == "9.9.9"
    assert response.headers["x-router-mode"] == "shadow"


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_openapi_publishes_route_contract(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/route"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["id", "source", "type"]
    assert schema["properties"]["id"]["maxLength"] == 128
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RouteDecision"
    )
    assert {"413", "422", "400", "429", "503"} <= set(operation["responses"])
    assert {"/health", "/ready", "/version", "/metrics", "/v1/route/batch", "/health/details"} <= set(
        spec["paths"]
    )


def test_request_id_is_echoed_or_made_up(client: TestClient) -> None:
    given = client.post("/v1/route", json=message(), headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = [client.post("/v1/route", json=message(id=f"r{i}")).headers["x-request-id"] for i in range(2)]
    assert made[0] != made[1] and all(made)
    hostile = client.post("/v1/route", json=message(id="r9"), headers={"X-Request-Id": "a b\\"})
    assert hostile.headers["x-request-id"] != "a b\\"
    assert client.get("/health").headers["x-request-id"]


def test_metadata_is_accepted_and_constrained(client: TestClient) -> None:
    ok = client.post("/v1/route", json=message(metadata={"severity": "critical"}))
    assert (ok.status_code, ok.json()["rule"]) == (200, "critical-severity")
    assert client.post("/v1/route", json=message(metadata={"k": 1})).status_code == 422
    too_many = {f"k{i}": "v" for i in range(33)}
    assert client.post("/v1/route", json=message(metadata=too_many)).status_code == 422


def test_same_id_gets_the_same_decision(client: TestClient) -> None:
    first = client.post("/v1/route", json=message(id="dup-1", type="alert")).json()
    again = client.post("/v1/route", json=message(id="dup-1", type="telemetry")).json()
    assert first["outcome"] == "decided" and again["outcome"] == "duplicate"
    assert {k: v for k, v in again.items() if k != "outcome"} == {
        k: v for k, v in first.items() if k != "outcome"
    }


def test_batch_routes_each_message_in_order(client: TestClient) -> None:
    batch = {"messages": [message(id="b1", type="alert"), message(id="b2"), message(id="b1")]}
    response = client.post("/v1/route/batch", json=batch)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 200, 200]
    assert [r["decision"]["outcome"] for r in results] == ["decided", "decided", "duplicate"]
    assert results[0]["decision"]["classification"] == "strategic"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"messages": []}, 422),
        ({"messages": [message(priority="1")]}, 422),
        ({"messages": [message()], "extra": 1}, 422),
        ([message()], 422),
    ],
)
def test_bad_batches_are_4xx(client: TestClient, body: Any, status: int) -> None:
    assert client.post("/v1/route/batch", json=body).status_code == status
    assert client.post("/v1/route/batch", content=b"{", headers=JSON).status_code == 400


def test_batch_size_is_limited(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_batch_size=2)
    response = client.post("/v1/route/batch", json={"messages": [message(id=f"m{i}") for i in range(3)]})
    assert response.status_code == 422
    assert "at most 2" in response.json()["detail"]


def test_shadow_and_mirrored_requests_do_not_claim_ids(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    mirrored = client.post("/v1/route", json=message(id="s-1"), headers={"X-Msgroute-Mirrored": "1"})
    assert mirrored.json()["outcome"] == "shadow"
    live = client.post("/v1/route", json=message(id="s-1"))
    assert live.json()["outcome"] == "decided"  # the shadow copy left no trace
    copy_after = client.post("/v1/route", json=message(id="s-1"), headers={"X-Msgroute-Mirrored": "1"})
    assert copy_after.json()["outcome"] == "duplicate"
