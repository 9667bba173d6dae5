"""Fixtures of the monitoring suite; the world itself is described in tests/monitoring/world.py."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.monitoring.world import NETWORK, Receiver, World, gateway


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    host = gateway()
    guards = (Receiver("guard lb1"), Receiver("guard lb2"))
    user_hook = Receiver("user receiver")
    for receiver in (*guards, user_hook):
        receiver.start(host)
    password, token = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    env = {
        "MSGROUTE_AM_GUARD_HOST": host,
        "MSGROUTE_AM_GUARD_PORTS": f"{guards[0].port},{guards[1].port}",
        "MSGROUTE_AM_USER_PORT": str(user_hook.port),
        "MSGROUTE_AM_PASSWORD": password,
        "MSGROUTE_AM_TOKEN": token,
        "MSGROUTE_AM_PROMETHEUS_IMAGE": os.environ.get(
            "MSGROUTE_AM_PROMETHEUS_IMAGE", "msgroute/prometheus:local"
        ),
        "MSGROUTE_AM_ALERTMANAGER_IMAGE": os.environ.get(
            "MSGROUTE_AM_ALERTMANAGER_IMAGE", "msgroute/alertmanager:local"
        ),
    }
    world = World("msgroute", password, token, guards, user_hook, env)
    deployed = world.apply()
    try:
        assert deployed.returncode == 0, deployed.output[-4000:]
        yield world
    finally:
        if not os.environ.get("MSGROUTE_AM_KEEP"):
            removed = world.apply("-e", "state=absent")
            subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True, check=False)
            for receiver in (*guards, user_hook):
                assert receiver.server is not None
                receiver.server.shutdown()
            assert removed.returncode == 0, removed.output[-3000:]


@pytest.fixture
def container_started_at() -> Callable[[str], str]:
    def started_at(name: str) -> str:
        return subprocess.run(
            ["docker", "inspect", "-f", "{{.State.StartedAt}} {{.State.Running}}", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    return started_at
