"""Fixtures for router_app tests: in-process clients and real ``python -m router_app`` processes.

Helpers are handed out as fixtures rather than imported, so nothing depends on how pytest imports test
directories (this one has no ``__init__.py``: it would be named ``router_app`` and shadow the real package).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from router_app.app import create_app
from router_app.config import Settings
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[3]


def _sample(name: str, **labels: str) -> float:
    """Current value of one series in the default registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def sample() -> Callable[..., float]:
    """``sample(name, **labels)``: read a metric from the default registry the app exports."""
    return _sample


@pytest.fixture
def child_env() -> Callable[[dict[str, str]], dict[str, str]]:
    """Environment for a child ``python -m router_app``: ours without ROUTER_*, plus ``extra``."""
    return _child_env


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Build a started TestClient for ``Settings`` with the given overrides."""
    clients: list[TestClient] = []

    def build(**overrides: object) -> TestClient:
        client = TestClient(create_app(replace(Settings(), **overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (just released by the OS)."""
    return free_port()


@dataclass
class RunningRouter:
    proc: subprocess.Popen[str]
    url: str

    def stop(self, timeout: float = 15.0) -> tuple[int, str]:
        """SIGTERM, wait, and return (exit code, stderr log)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"router exited early ({proc.returncode}): {proc.communicate()[1]}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=1) as response:
                if json.load(response)["status"] == "ready":
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("router did not become ready")


@pytest.fixture
def start_router() -> Iterator[Callable[..., RunningRouter]]:
    """Start real routers on 127.0.0.1 (random free port) with extra env; stopped at teardown."""
    running: list[RunningRouter] = []

    def start(**env: str) -> RunningRouter:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "router_app"],
            cwd=ROOT,
            env=_child_env({"ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": str(port), **env}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        router = RunningRouter(proc, f"http://127.0.0.1:{port}")
        running.append(router)
        wait_ready(router.url, proc)
        return router

    yield start
    for router in running:
        if router.proc.poll() is None:
            router.proc.kill()
            router.proc.communicate(timeout=10)
