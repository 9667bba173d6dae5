"""Fixtures for router_app tests: in-process clients and real ``python -m router_app`` processes.

Helpers are handed out as fixtures rather than imported, so nothing depends on how pytest imports test
directories (this one has no ``__init__.py``: it would be named ``router_app`` and shadow the real package).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from router_app.app import create_app
from router_app.config import Settings
from tests.support import ROOT, processes
from tests.support.net import free_port
from tests.support.processes import Process


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
    return processes.child_env


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


@pytest.fixture
def start_router() -> Iterator[Callable[..., Process]]:
    """Start real routers on 127.0.0.1 (random free port) with extra env; stopped at teardown."""
    running: list[Process] = []

    def start(**env: str) -> Process:
        running.append(processes.start_router(**env))
        return running[-1]

    yield start
    for router in running:
        router.kill()
