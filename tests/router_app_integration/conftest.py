"""Real processes on 127.0.0.1: ``python -m router_app``, ``python -m router_app.sink`` and ``redis-server``.

Nothing is faked here. Every process gets a free loopback port, is waited for until it answers, and is
stopped at teardown. ``redis-server`` must be installed (Debian: ``apt-get install -y redis-server``); the
Redis tests fail, not skip, without it, so a CI machine that lacks it is noticed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support import processes as support_processes
from tests.support.metrics import scrape
from tests.support.net import free_port
from tests.support.processes import Process


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: builds and runs the router image (needs a Docker engine)")


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict]:
    """One request; returns (status, parsed JSON or text, headers) for any status."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    try:
        return status, json.loads(raw), got
    except ValueError:
        return status, raw.decode(), got


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    running: list[Process] = []
    yield running
    for process in running:
        process.kill()


@pytest.fixture
def start_sink(processes: list[Process]) -> Callable[..., Process]:
    def start(name: str = "sink", *args: str) -> Process:
        processes.append(support_processes.start_sink(name, *args))
        return processes[-1]

    return start


@pytest.fixture
def start_router(processes: list[Process]) -> Callable[..., Process]:
    def start(**env: str) -> Process:
        processes.append(support_processes.start_router(**{"ROUTER_VERSION": "it", **env}))
        return processes[-1]

    return start


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Process]:
    """A private redis-server on a free loopback port, no persistence."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (apt-get install -y redis-server)"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    server = Process(proc, f"redis://127.0.0.1:{port}/0", port)

    def pong() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_until(pong, what="redis-server")
    yield server
    server.kill()


class DurableRedis:
    """A password-protected redis-server with AOF on (``appendfsync everysec``, as the deployment runs it), in
    its own directory, that a test can kill (SIGKILL) and start again with the same data."""

    PASSWORD = "it-durable-secret"

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (apt-get install -y redis-server)"
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://:{self.PASSWORD}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", self.PASSWORD,
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        wait_until(self._answers, what="redis-server")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(f"AUTH {self.PASSWORD}\r\nPING\r\n".encode())
                time.sleep(0.02)
                return b"+PONG" in sock.recv(64)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: what a crash or the OOM killer does; only what reached the AOF survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[DurableRedis]:
    server = DurableRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def route(router: Process, message: dict[str, Any], **headers: str) -> tuple[int, Any, dict]:
    return http("POST", f"{router.url}/v1/route", message, headers)


def message(i: int | str, msg_type: str = "status", **extra: Any) -> dict[str, Any]:
    return {"id": f"it-{i}", "source": "integration", "type": msg_type, **extra}


def metric(router: Process, name: str, **labels: str) -> float:
    """The router's samples called ``name`` with these labels, summed (0 when absent)."""
    return scrape(f"{router.url}/metrics").value(name, **labels)


def sink_stats(sink: Process, ids: bool = False) -> dict[str, Any]:
    return http("GET", f"{sink.url}/stats" + ("?ids=1" if ids else ""))[1]


@pytest.fixture
def h() -> SimpleNamespace:
    """The helpers above, handed out as a fixture so tests never import this conftest by name."""
    return SimpleNamespace(
        http=http, route=route, message=message, metric=metric, sink_stats=sink_stats, wait_until=wait_until
    )
