"""The destination sink (counts deliveries, can be told to fail) and the corked transport of the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from router_app.config import Settings
from router_app.corking import CorkedTransport, corked_protocol
from router_app.server import redacted
from router_app.sink import Sink, parse_args


@pytest.fixture
def sink() -> Iterator[TestClient]:
    with TestClient(Sink("s1")) as client:
        yield client


def deliver(client: TestClient, message_id: str, cls: str = "tactical") -> int:
    headers = {"X-Msgroute-Message-Id": message_id, "X-Msgroute-Class": cls}
    return client.post("/deliver", json={"id": message_id}, headers=headers).status_code


def test_sink_counts_deliveries_and_duplicates(sink: TestClient) -> None:
    assert [deliver(sink, i) for i in ("a", "b", "a")] == [200, 200, 200]
    assert sink.post("/other/path", json={"id": "c"}).json() == {"ack": "c", "sink": "s1"}  # id from the body
    stats = sink.get("/stats?ids=1").json()
    assert (stats["received"], stats["unique"], stats["duplicates"]) == (4, 3, 1)
    assert stats["ids"] == {"a": 2, "b": 1, "c": 1}
    assert stats["by_class"] == {"tactical": 2, "unknown": 1}  # taken messages: the duplicate is not one
    assert "ids" not in sink.get("/stats").json()
    sink.post("/reset")
    assert sink.get("/stats").json()["received"] == 0


def test_sink_can_be_told_to_fail(sink: TestClient) -> None:
    assert sink.post("/control", json={"fail_status": 503}).status_code == 200
    assert deliver(sink, "x") == 503
    assert sink.get("/stats").json()["refused"] == 1
    assert sink.post("/control", json={"fail_status": 200}).status_code == 400
    assert sink.post("/control", content=b"nope").status_code == 400
    sink.post("/control", json={"fail_status": 0})
    assert deliver(sink, "x") == 200
    assert sink.get("/health").json() == {"status": "ok"}
    assert sink.get("/nowhere").status_code == 404


def test_sink_acknowledges_a_redelivery_without_taking_it_again(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = {"Idempotency-Key": "m-1", "X-Msgroute-Class": "strategic", "traceparent": trace}
    with TestClient(Sink("s1", ledger=str(ledger))) as sink:
        first = sink.post("/deliver", json={"id": "other"}, headers=headers).json()
        again = sink.post("/deliver", json={"id": "other"}, headers=headers).json()
        metrics = sink.get("/metrics").text
    assert first == {"ack": "m-1", "sink": "s1"}  # the header names the message, not the body
    assert again == {"ack": "m-1", "sink": "s1", "duplicate": True}
    assert 'msgroute_sink_deliveries_total{message_class="strategic",sink="s1"} 1.0' in metrics
    assert 'msgroute_sink_duplicates_total{sink="s1"} 1.0' in metrics
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [(r["event"], r["message_id"], r["trace_id"]) for r in records] == [
        ("delivered", "m-1", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("duplicate", "m-1", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ]
    # A restarted sink reads its ledger back: the id stays taken.
    with TestClient(Sink("s1", ledger=str(ledger))) as restarted:
        answer = restarted.post("/deliver", json={"id": "m-1"}).json()
        stats = restarted.get("/stats").json()
    assert answer["duplicate"] is True and (stats["unique"], stats["duplicates"]) == (1, 1)


@pytest.mark.parametrize("args", [["--port", "0"], ["--fail-status", "200"], ["--port", "x"]])
def test_sink_refuses_bad_arguments(args: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args(args)
    assert caught.value.code == 2


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_corked_transport_sends_one_write_per_loop_step() -> None:
    async def scenario() -> FakeTransport:
        fake = FakeTransport()
        corked = CorkedTransport(fake, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        corked.write(b"body")
        assert fake.writes == []  # held until the step ends
        await asyncio.sleep(0)
        corked.write(b"next")
        corked.close()  # closing flushes first
        assert corked.get_extra_info("peername") == "info:peername"  # everything else is the real transport
        return fake

    fake = asyncio.run(scenario())
    assert fake.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]
    assert fake.closed


def test_corked_protocol_is_uvicorns_httptools_protocol() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    protocol = corked_protocol()
    assert isinstance(protocol, type) and issubclass(protocol, HttpToolsProtocol)


def test_start_log_masks_secrets() -> None:
    values = redacted(Settings(admin_token="x" * 20, redis_url="redis://user:secret@redis:6379/0"))
    assert values["admin_token"] == "***"
    assert values["redis_url"] == "redis://***@redis:6379/0"
