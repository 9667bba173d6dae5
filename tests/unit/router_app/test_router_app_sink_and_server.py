"""The destination sink (counts deliveries, can be told to fail) and the corked transport of the server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

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
    assert stats["by_class"] == {"tactical": 3, "unknown": 1}
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
