"""Hostile input, in-process (issue 10): bounds and alphabets over the whole schema, no reservation leaked by
any failure after admission, header-safe delivery, admin gates before the body, and the smaller items."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from router_app import engine as engine_module
from router_app.app import create_app
from router_app.config import ConfigError, Settings, load_settings
from router_app.edge import EdgeApp
from router_app.engine import RoutingEngine
from router_app.httpclient import InvalidHeader, header_lines
from router_app.logs import JsonFormatter
from router_app.models import ALNUM, ID_CHARS, MAX_TTL_MS, NAME_CHARS, RouteRequest
from router_app.queues import Envelope
from router_app.rawjson import batch_items, has_duplicate_keys
from router_app.server import redacted

JSON = {"content-type": "application/json"}
# Destinations with URLs (so admission queues) on a port nobody listens on: nothing here waits for delivery.
DISPATCHING = {
    "destinations": ("a", "b"),
    "destination_urls": {"a": "http://127.0.0.1:9/", "b": "http://127.0.0.1:9/"},
}


def word(chars: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.builds(
        str.__add__, st.sampled_from(ALNUM), st.text(chars, min_size=min_size - 1, max_size=max_size - 1)
    )


CONTROL = st.sampled_from(["\r\n", "\n", "\r", "\x00", "\x7f", "\x85", "\u2028", "\u2029", "\x1b[31m", "\t"])


def hostile_text(chars: str, max_size: int) -> st.SearchStrategy[str]:
    """Strings just outside a field's contract: too long, empty, a control character, a foreign character."""
    return st.one_of(
        st.just(""),
        word(chars, max_size + 1, max_size + 1),
        st.builds(lambda a, c, b: a + c + b, word(chars, 1, 8), CONTROL, st.text(chars, max_size=8)),
        st.builds(
            lambda c, b: c + b, st.sampled_from([" ", "-", '"', "\\", "é", "{"]), st.text(chars, max_size=8)
        ),
    )


NOT_A_STRING = st.one_of(st.none(), st.integers(), st.booleans(), st.just([]), st.just({}))
BIG = st.sampled_from([10**400, -(10**400), 2**63, 2**64 + 1])
VALID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": word(ID_CHARS, 1, 128),
    "source": word(NAME_CHARS, 1, 256),
    "type": word(NAME_CHARS, 1, 128),
    "priority": st.integers(0, 9),
    "ttl_ms": st.sampled_from([0, 1, MAX_TTL_MS]),
    "metadata": st.dictionaries(word(NAME_CHARS, 1, 64), st.text(ALNUM + " ", max_size=256), max_size=32),
    "payload": st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=3),
}
HOSTILE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": hostile_text(ID_CHARS, 128) | NOT_A_STRING,
    "source": hostile_text(NAME_CHARS, 256) | NOT_A_STRING,
    "type": hostile_text(NAME_CHARS, 128) | NOT_A_STRING,
    "priority": st.sampled_from([-1, 10, 1.5, "1", True]) | BIG,
    "ttl_ms": st.sampled_from([-1, MAX_TTL_MS + 1, 1e400, 1.0, "5", False]) | BIG,
    "metadata": st.one_of(
        st.dictionaries(word(NAME_CHARS, 1, 8), st.text(max_size=4), min_size=33, max_size=34),
        st.builds(lambda k: {k: "v"}, hostile_text(NAME_CHARS, 64).filter(bool)),
        st.builds(
            lambda v: {"k": v},
            st.text(ALNUM, min_size=257, max_size=300)
            | st.builds(lambda a, c: a + c, st.text(ALNUM, max_size=8), CONTROL),
        ),
        st.just({"k": 1}),
        st.just([]),
    ),
    "payload": st.sampled_from([[], "text", 1, True]),
}
FIELDS = sorted(VALID_FIELDS)


@st.composite
def hostile_message(draw: st.DrawFn) -> dict[str, Any]:
    """A message with every field valid (bounds included) but at least one just beyond its contract."""
    message = {name: draw(VALID_FIELDS[name]) for name in ("id", "source", "type")}
    for name in FIELDS:
        if name not in message and draw(st.booleans()):
            message[name] = draw(VALID_FIELDS[name])
    broken = draw(st.lists(st.sampled_from([*FIELDS, "extra"]), min_size=1, max_size=3, unique=True))
    for name in broken:
        message[name] = draw(HOSTILE_FIELDS[name]) if name != "extra" else 1
    return message


def server_errors() -> float:
    return (
        REGISTRY.get_sample_value("msgroute_requests_total", {"status_class": "5xx", "mirrored": "false"})
        or 0.0
    )


def accounting(engine: RoutingEngine) -> dict[str, Any]:
    """Everything an admission may take: queue slots and depth, pending and in-flight counts, stored ids."""
    return {
        "queues": {n: (len(q), q.reserved) for n, q in engine.queues.queues.items()},
        "loads": {n: (load.pending, load.in_flight) for n, load in engine.strategy.loads.items()},
        "store": len(engine.store),  # type: ignore[arg-type]
    }


HOSTILE = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@HOSTILE
@given(messages=st.lists(hostile_message(), min_size=1, max_size=4), at_bound=st.booleans())
def test_refused_requests_leave_no_trace(messages: list[dict[str, Any]], at_bound: bool) -> None:
    app = create_app(replace(Settings(), queue_capacity=3, drain_timeout_s=0, **DISPATCHING))  # type: ignore[arg-type]
    engine: RoutingEngine = app.engine
    with TestClient(app, raise_server_exceptions=False) as client:
        before = accounting(engine)
        errors_before = server_errors()
        for message in messages:
            body = json.dumps(message).encode()
            single = client.post("/v1/route", content=body, headers=JSON)
            batch = client.post(
                "/v1/route/batch",
                content=b'{"messages": [{"id": "ok-0", "source": "s", "type": "t"}, ' + body + b"]}",
                headers=JSON,
            )
            assert single.status_code in (400, 413, 422), (message, single.text)
            assert batch.status_code in (400, 413, 422), (message, batch.text)
            assert "detail" in single.json()
        assert accounting(engine) == before
        # What was refused left nothing behind: the same id (when it was a valid one) is new, not a duplicate.
        retry_id = messages[0]["id"] if isinstance(messages[0].get("id"), str) else ""
        try:
            RouteRequest(id=retry_id, source="s", type="t")
        except ValueError:
            retry_id = "follow-up-1"
        follow_up = {
            "id": retry_id,
            "source": "s" * 256 if at_bound else "s",
            "type": "status",
            "ttl_ms": MAX_TTL_MS,
        }
        answer = client.post("/v1/route", json=follow_up)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "queued"
        assert server_errors() == errors_before


@HOSTILE
@given(
    message=st.fixed_dictionaries(
        {name: VALID_FIELDS[name] for name in ("id", "source", "type")},
        optional={n: VALID_FIELDS[n] for n in ("priority", "ttl_ms", "metadata", "payload")},
    )
)
def test_every_message_within_bounds_is_queued(message: dict[str, Any]) -> None:
    app = create_app(replace(Settings(), max_body_bytes=1 << 20, drain_timeout_s=0, **DISPATCHING))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/v1/route", content=json.dumps(message).encode(), headers=JSON)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "queued"


def test_an_error_names_the_field_and_never_echoes_it(client: TestClient) -> None:
    evil = "x\r\nX-Injected: yes"
    answer = client.post("/v1/route", json={"id": evil, "source": "s", "type": "t"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["id"]
    assert "Injected" not in answer.text


def test_huge_ttl_is_422_not_500(client: TestClient, sample: Callable[..., float]) -> None:
    before = sample("msgroute_requests_total", status_class="5xx", mirrored="false")
    body = b'{"id": "t-1", "source": "s", "type": "t", "ttl_ms": 1' + b"0" * 400 + b"}"
    answer = client.post("/v1/route", content=body, headers=JSON)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["ttl_ms"]
    assert sample("msgroute_requests_total", status_class="5xx", mirrored="false") == before


# -- one release path: a failure at any step after admission started gives everything back ------------------


def _fail(*_: Any, **__: Any) -> Any:
    raise RuntimeError("injected")


async def _afail(*_: Any, **__: Any) -> Any:
    raise RuntimeError("injected")


STEPS: dict[str, Callable[[RoutingEngine, pytest.MonkeyPatch], None]] = {
    "choose": lambda e, mp: mp.setattr(e, "_choose", _fail),
    "decision": lambda e, mp: mp.setattr(e, "_decision", _fail),
    "claim": lambda e, mp: mp.setattr(e.store, "claim", _afail),
    "assign": lambda e, mp: mp.setattr(e.strategy, "assign", _fail),
    "ttl": lambda e, mp: mp.setattr(e, "_ttl_s", _fail),
    "envelope": lambda e, mp: mp.setattr(engine_module, "Envelope", _fail),
    "commit": lambda e, mp: mp.setattr(e.queues, "commit", _fail),
    "cancelled": lambda e, mp: mp.setattr(e.queues, "commit", _cancel),
}


def _cancel(*_: Any) -> None:
    raise asyncio.CancelledError


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_failure_at_any_admission_step_gives_everything_back(
    step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = RoutingEngine(replace(Settings(), queue_capacity=1, **DISPATCHING))  # type: ignore[arg-type]
    message = RouteRequest(id="m-1", source="s", type="status")
    before = accounting(engine)

    async def scenario() -> str:
        with monkeypatch.context() as patched:
            STEPS[step](engine, patched)
            with pytest.raises((RuntimeError, asyncio.CancelledError)):
                await engine.submit(message, b"{}", mirrored=False)
        assert accounting(engine) == before
        again = await engine.submit(message, b"{}", mirrored=False)
        return again.outcome

    assert asyncio.run(scenario()) == "queued"  # the id is new again and the only slot is free


def test_a_failing_give_back_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = RoutingEngine(replace(Settings(), **DISPATCHING))  # type: ignore[arg-type]
    monkeypatch.setattr(engine.queues, "commit", _fail)
    monkeypatch.setattr(engine.strategy, "unassign", _fail)
    before_queues = {n: q.reserved for n, q in engine.queues.queues.items()}

    async def scenario() -> None:
        with pytest.raises(RuntimeError):
            await engine.submit(RouteRequest(id="m-1", source="s", type="status"), b"{}", mirrored=False)

    asyncio.run(scenario())
    assert {n: q.reserved for n, q in engine.queues.queues.items()} == before_queues
    assert len(engine.store) == 0  # type: ignore[arg-type]


def test_a_crashing_batch_item_is_its_own_500(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(drain_timeout_s=0, **DISPATCHING)
    engine: RoutingEngine = client.app.engine  # type: ignore[attr-defined]
    original = engine.submit

    async def submit(message: RouteRequest, *args: Any) -> Any:
        if message.id == "bad":
            raise RuntimeError("bug")
        return await original(message, *args)

    monkeypatch.setattr(engine, "submit", submit)
    batch = {"messages": [{"id": i, "source": "s", "type": "status"} for i in ("m-1", "bad", "m-2")]}
    answer = client.post("/v1/route/batch", json=batch)
    assert answer.status_code == 200
    assert [r["status"] for r in answer.json()["results"]] == [200, 500, 200]


# -- delivery never writes an unsafe header ----------------------------------------------------------------


@pytest.mark.parametrize("value", [b"a\r\nX-Injected: yes", b"a\nb", b"a\rb", b"a\x00b"])
def test_http_client_refuses_unsafe_header_values(value: bytes) -> None:
    with pytest.raises(InvalidHeader):
        header_lines([(b"x-ok", b"fine"), (b"x-msgroute-message-id", value)])


@pytest.mark.parametrize("name", [b"", b"a b", b"a:b", b"a\r\nb"])
def test_http_client_refuses_bad_header_names(name: bytes) -> None:
    with pytest.raises(InvalidHeader):
        header_lines([(name, b"v")])


def test_an_unsendable_message_is_refused_without_blaming_the_destination() -> None:
    engine = RoutingEngine(replace(Settings(), **DISPATCHING))  # type: ignore[arg-type]
    dispatcher = engine.dispatcher
    assert dispatcher is not None
    envelope = Envelope("evil\r\nx-injected: 1", "tactical", 5, "a", b"{}", float("inf"), 0.0)

    async def scenario() -> None:
        await dispatcher.deliver(envelope)

    asyncio.run(scenario())
    assert envelope.attempts == 1
    assert engine.breakers["a"].failures == 0
    assert engine.strategy.loads["a"].in_flight == 0


# -- admin: the gate comes before the body -----------------------------------------------------------------


async def _never(*_: Any) -> Any:
    raise AssertionError("the body was read")


def _call(
    app: EdgeApp, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": b""}
    asyncio.run(app(scope, _never, send))
    return sent[0]["status"], dict(sent[0]["headers"])


@pytest.mark.parametrize(
    ("token", "authorization", "status"),
    [
        (None, None, 404),
        (None, b"Bearer " + b"t" * 32, 404),
        ("t" * 32, None, 401),
        ("t" * 32, b"Bearer wrong", 401),
    ],
)
def test_admin_refuses_before_reading_any_body(
    token: str | None, authorization: bytes | None, status: int
) -> None:
    app = create_app(replace(Settings(), admin_token=token))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"209715200")]
    if authorization:
        headers.append((b"authorization", authorization))
    got, answer_headers = _call(app, "PUT", "/admin/faults", headers)
    assert got == status
    assert answer_headers[b"connection"] == b"close"


def test_an_oversized_body_is_refused_before_reading_it_on_any_path() -> None:
    app = create_app(Settings())
    headers = [(b"content-type", b"application/json"), (b"content-length", b"209715200")]
    for method, path in (
        ("POST", "/v1/route"),
        ("POST", "/v1/route/batch"),
        ("POST", "/health"),
        ("PUT", "/nowhere"),
    ):
        assert _call(app, method, path, headers)[0] == 413, path


def test_admin_validation_does_not_echo_input(make_client: Callable[..., TestClient]) -> None:
    client = make_client(admin_token="t" * 32)
    answer = client.put(
        "/admin/faults",
        content=b'{"error_rate": "SECRET-INPUT"}',
        headers={"authorization": "Bearer " + "t" * 32, **JSON},
    )
    assert answer.status_code == 422
    assert "SECRET-INPUT" not in answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "error_rate"]


def test_delete_faults_clears_the_settings(make_client: Callable[..., TestClient]) -> None:
    client = make_client(admin_token="t" * 32)
    auth = {"authorization": "Bearer " + "t" * 32}
    client.put("/admin/faults", json={"enabled": True, "error_rate": 1.0, "latency_ms": 5}, headers=auth)
    client.delete("/admin/faults", headers=auth)
    again = client.put("/admin/faults", json={"enabled": True}, headers=auth).json()
    assert (again["error_rate"], again["latency_ms"], again["active"]) == (0.0, 0.0, False)
    assert client.post("/v1/route", json={"id": "m-1", "source": "s", "type": "t"}).status_code == 200


# -- smaller items ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_only_json_is_routed(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    for path in ("/v1/route", "/v1/route/batch"):
        answer = client.post(path, content=b'{"id": "m-1", "source": "s", "type": "t"}', headers=headers)
        assert answer.status_code == 415


def test_json_with_charset_is_routed(client: TestClient) -> None:
    headers = {"content-type": "application/json; charset=utf-8"}
    assert (
        client.post(
            "/v1/route", content=b'{"id": "m-1", "source": "s", "type": "t"}', headers=headers
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "a", "source": "s", "type": "t", "id": "b"}',
        b'{"id": "a", "source": "s", "type": "t", "payload": {"k": 1, "k": 2}}',
        b'{"id": "a", "source": "s", "type": "t", "metadata": {"k": "1", "k": "2"}}',
        b'{"id": "a", "source": "s", "type": "t", "payload": {"l": [{"x": 1, "x": 1}]}}',
        b'{"id": "a", "source": "s", "type": "t", "payload": {"\\u006b": 1, "k": 2}}',
    ],
)
def test_duplicate_keys_are_refused(client: TestClient, body: bytes) -> None:
    answer = client.post("/v1/route", content=body, headers=JSON)
    assert answer.status_code == 422
    batch = client.post("/v1/route/batch", content=b'{"messages": [' + body + b"]}", headers=JSON)
    assert batch.status_code == 422


def test_colons_inside_strings_are_not_duplicates(client: TestClient) -> None:
    body = b'{"id": "urn:a:b", "source": "s", "type": "t", "payload": {"at": "12:00:00", "u": "http://x"}}'
    assert client.post("/v1/route", content=body, headers=JSON).status_code == 200
    assert not has_duplicate_keys(body, 6)


def test_batch_items_are_the_senders_bytes() -> None:
    items = [b'{"id":"a","payload":{"x":1.50,"s":"}]{[\\"","l":[{}]}}', b'{ "id" : "b" }']
    body = b'{"messages":[' + b" , ".join(items) + b"] }"
    assert batch_items(body) == items


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=4), min_size=1, max_size=5),
    space=st.sampled_from(["", " ", "\n", "\t ", "\r\n"]),
    ascii_only=st.booleans(),
)
def test_batch_items_finds_each_item_whatever_its_content(
    items: list[dict[str, Any]], space: str, ascii_only: bool
) -> None:
    raws = [json.dumps(item, ensure_ascii=ascii_only).encode() for item in items]
    body = f'{space}{{{space}"messages"{space}:{space}[{space}'.encode()
    body += f"{space},{space}".encode().join(raws) + f"{space}]{space}}}{space}".encode()
    assert batch_items(body) == raws


def test_redis_passwords_never_reach_a_log_line() -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings({"ROUTER_REDIS_URL": "ftp://user:hunter2@h/0"})
    assert "hunter2" not in str(bad.value)
    for url in ("redis://user:hunter2@h:6379/0", "redis://h:6379/0?password=hunter2", "redis://:hunter2@h"):
        assert "hunter2" not in json.dumps(redacted(load_settings({"ROUTER_REDIS_URL": url})))


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x00", "\x1b"])
def test_log_lines_stay_one_ascii_line(char: str) -> None:
    record = logging.LogRecord("router_app", logging.ERROR, "", 0, f"id a{char}b", None, None)
    record.fields = {"message_id": f"x{char}y"}
    line = JsonFormatter().format(record)
    assert line.isascii() and len(line.splitlines()) == 1
    assert json.loads(line)["message_id"] == f"x{char}y"
