"""Hostile and careless clients against a real ``python -m router_app`` on 127.0.0.1 (issue 10, items 2-5).

Every loop is bounded; the only timing asserted is the issue's "a normal client's p99 stays within 10x its
idle value", with a generous floor so a busy machine does not fail it (figures: bench/router/hostile.py).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest

from router_app import tracing
from tests.support.hostile import (
    EndlessUrl,
    RawSink,
    SlowClients,
    percentile,
    raw_exchange,
    rss_bytes,
    status_of,
    timed_requests,
)
from tests.support.processes import Process

TOKEN = "t" * 32
EXPECTED_HEADERS = {
    "host",
    "content-type",
    "content-length",
    "x-msgroute-message-id",
    "x-msgroute-class",
    "x-msgroute-priority",
    "x-msgroute-attempt",
    "x-msgroute-destination",
    "x-router-version",
    "x-request-id",
    "idempotency-key",
    "traceparent",
}


def post(path: str, body: bytes, *headers: bytes) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1".encode(),
        b"Host: router",
        b"Content-Type: application/json",
        f"Content-Length: {len(body)}".encode(),
        b"Connection: close",
        *headers,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.fixture
def raw_sink() -> Iterator[RawSink]:
    sink = RawSink().start()
    yield sink
    sink.stop()


# -- item 2: no field can add a header -----------------------------------------------------------------------

INJECTIONS = ["x\r\nX-Injected: yes", "evil\r\nx-msgroute-message-id: victim-42", "nul\x00byte", "lf\nonly"]


def test_no_field_can_add_a_header_line(
    start_router: Callable[..., Process], raw_sink: RawSink, h: SimpleNamespace
) -> None:
    router = start_router(ROUTER_DESTINATIONS=f"sink={raw_sink.url}")
    port = router.port
    refused = []
    for evil in INJECTIONS:
        for field in ("id", "source", "type"):
            message = {"id": "ok-1", "source": "s", "type": "status", field: evil}
            refused.append(status_of(raw_exchange(port, post("/v1/route", json.dumps(message).encode()))))
        message = {"id": "ok-2", "source": "s", "type": "status", "metadata": {"k": evil}}
        refused.append(status_of(raw_exchange(port, post("/v1/route", json.dumps(message).encode()))))
        message = {"id": "ok-3", "source": "s", "type": "status", "metadata": {evil: "v"}}
        refused.append(status_of(raw_exchange(port, post("/v1/route", json.dumps(message).encode()))))
        batch = {"messages": [{"id": evil, "source": "s", "type": "status"}]}
        refused.append(status_of(raw_exchange(port, post("/v1/route/batch", json.dumps(batch).encode()))))
    assert set(refused) == {422}
    # A request id or a traceparent that is not in its alphabet is replaced, never forwarded.
    body = json.dumps({"id": "clean-1", "source": "s", "type": "status", "payload": {"x": "a\r\nb: c"}})
    evil_trace = b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 x-evil: 1"
    answer = raw_exchange(port, post("/v1/route", body.encode(), b"X-Request-Id: abc def", evil_trace))
    assert status_of(answer) == 200
    h.wait_until(lambda: len(raw_sink.requests) == 1, what="the delivery")
    delivered = raw_sink.requests[0]
    assert {line.split(b":")[0].lower().decode() for line in delivered.header_lines} == EXPECTED_HEADERS
    assert len(delivered.header_lines) == len(EXPECTED_HEADERS)
    assert delivered.headers()["x-msgroute-message-id"] == "clean-1"
    assert delivered.headers()["idempotency-key"] == "clean-1"
    trace = delivered.headers()["traceparent"]
    assert tracing.parse(trace.encode()) is not None and "4bf92f35" not in trace
    assert delivered.body == body.encode()  # byte for byte, escaped CRLF inside the JSON string included


def test_batch_items_are_forwarded_byte_for_byte(
    start_router: Callable[..., Process], raw_sink: RawSink, h: SimpleNamespace
) -> None:
    router = start_router(ROUTER_DESTINATIONS=f"sink={raw_sink.url}")
    items = [
        b'{"id":"b-1","source":"s","type":"status","payload":{"amount":1.50}}',
        b'{ "id" : "b-2", "source":"s", "type":"status",'
        b' "payload": {"big": 1e999, "n": 10000000000000000000001}}',
    ]
    body = b'{"messages": [' + b" ,\n ".join(items) + b"]}"
    answer = raw_exchange(router.port, post("/v1/route/batch", body))
    assert status_of(answer) == 200
    h.wait_until(lambda: len(raw_sink.requests) == 2, what="both deliveries")
    assert sorted(r.body for r in raw_sink.requests) == sorted(items)


def test_duplicate_keys_are_refused(start_router: Callable[..., Process], h: SimpleNamespace) -> None:
    router = start_router()
    body = b'{"id":"a","source":"s","type":"t","id":"victim"}'
    answer = raw_exchange(router.port, post("/v1/route", body))
    assert status_of(answer) == 422
    assert b"repeats a key" in answer


# -- items 3 and 5: the request head is bounded in size and time; connections are limited -------------------


def test_request_line_and_head_limits(start_router: Callable[..., Process]) -> None:
    router = start_router()
    port = router.port
    long_url = b"GET /health?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(raw_exchange(port, long_url)) == 414
    big_header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 20_000 + b"\r\n\r\n"
    assert status_of(raw_exchange(port, big_header)) == 431
    many = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n"
    assert status_of(raw_exchange(port, many)) == 431
    normal = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert status_of(raw_exchange(port, normal)) == 200


def test_partial_heads_and_bodies_time_out(start_router: Callable[..., Process]) -> None:
    router = start_router(ROUTER_HEADER_TIMEOUT_S="0.5", ROUTER_BODY_TIMEOUT_S="0.5")
    port = router.port
    assert status_of(raw_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Half")) == 408
    assert status_of(raw_exchange(port, b"")) == 408  # idle before the first request
    partial_body = b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    partial_body += b"Content-Length: 100\r\n\r\n{"
    assert status_of(raw_exchange(port, partial_body)) == 408


def test_connection_limit_answers_503(start_router: Callable[..., Process]) -> None:
    router = start_router(ROUTER_MAX_CONNECTIONS="20")
    slow = SlowClients(router.port, 20)
    try:
        assert slow.tick() == 20
        answer = raw_exchange(router.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(answer) == 503
        assert b"retry-after: 1" in answer.lower()
    finally:
        slow.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the slots come back once the slow clients are gone
        if (
            status_of(
                raw_exchange(router.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            )
            == 200
        ):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("connections were not given back")


def test_normal_client_is_served_while_slow_clients_and_an_endless_url_are_open(
    start_router: Callable[..., Process],
) -> None:
    router = start_router(ROUTER_HEADER_TIMEOUT_S="30")
    port = router.port
    timed_requests(port, 50)  # warm up
    idle = timed_requests(port, 300)
    rss_before = rss_bytes(router.proc.pid)
    slow = SlowClients(port, 200)
    endless = EndlessUrl(port)
    try:
        loaded: list[float] = []
        for _round in range(30):  # bounded: interleave the abuse with the normal client
            endless.feed()
            slow.tick()
            loaded += timed_requests(port, 10)
        assert len(slow.sockets) == 200  # still open: within the limits, only slow
        assert endless.refused or endless.sent >= 8 * 1024
        assert status_of(endless.answer()) == 414
        rss_after = rss_bytes(router.proc.pid)
    finally:
        slow.close()
        endless.close()
    idle_p99, loaded_p99 = percentile(idle, 0.99), percentile(loaded, 0.99)
    assert loaded_p99 <= max(10 * idle_p99, 0.25), (idle_p99, loaded_p99)
    assert rss_after - rss_before < 32 * 1024 * 1024, (rss_before, rss_after)


# -- item 4: admin auth and size limits before any body is read ----------------------------------------------


def _admin_put(port: int, size: int, token: str | None) -> tuple[int, bytes]:
    """PUT a body of ``size`` bytes announced up front, sent in bounded chunks until the server answers."""
    head = [b"PUT /admin/faults HTTP/1.1", b"Host: x", b"Content-Type: application/json"]
    head.append(f"Content-Length: {size}".encode())
    if token:
        head.append(f"Authorization: Bearer {token}".encode())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        chunk = b"{" * 65_536
        sent = 0
        sock.settimeout(0.05)
        answer = b""
        while sent < size:  # bounded by size
            try:
                answer = sock.recv(4096)
                if answer:
                    break
            except TimeoutError:
                pass
            except OSError:
                break
            try:
                sock.sendall(chunk)
                sent += len(chunk)
            except OSError:
                break
        sock.settimeout(5)
        if not answer:
            try:
                answer = sock.recv(4096)
            except OSError:
                answer = b""
    return sent, answer


@pytest.mark.parametrize(
    ("token_set", "sent_token", "status"), [(False, None, 404), (True, None, 401), (True, "w" * 32, 401)]
)
def test_admin_refuses_before_reading_the_body(
    start_router: Callable[..., Process], token_set: bool, sent_token: str | None, status: int
) -> None:
    env = {"ROUTER_ADMIN_TOKEN": TOKEN} if token_set else {}
    router = start_router(**env)
    rss_before = rss_bytes(router.proc.pid)
    sent, answer = _admin_put(router.port, 200 * 1024 * 1024, sent_token)
    assert status_of(answer) == status
    assert sent < 50 * 1024 * 1024  # answered long before the body could have been read
    assert rss_bytes(router.proc.pid) - rss_before < 16 * 1024 * 1024


def test_admin_body_limit_applies_with_the_right_token(start_router: Callable[..., Process]) -> None:
    router = start_router(ROUTER_ADMIN_TOKEN=TOKEN)
    _status, answer = _admin_put(router.port, 200 * 1024 * 1024, TOKEN)
    assert status_of(answer) == 413
    body = json.dumps({"error_rate": "x" * 10}).encode()
    got = raw_exchange(
        router.port,
        post("/admin/faults", body, f"Authorization: Bearer {TOKEN}".encode()).replace(b"POST", b"PUT", 1),
    )
    assert status_of(got) == 422
    assert b"xxxxxxxxxx" not in got  # the input is never echoed
