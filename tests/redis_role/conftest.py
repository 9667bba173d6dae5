"""The redis suite's world: role redis's real container (tests/redis_role/inventory.yml), deployed once for
the module under h5redis-* names and removed with everything it made (container, volume, configuration,
network, image), whatever the tests found. MSGROUTE_REDIS_KEEP=1 keeps it for a look."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.playbooks import PlaybookRun, run_playbook
from tests.support.processes import docker

SUITE = ROOT / "tests" / "redis_role"
CONTAINER = "h5redis-redis"
VOLUME = "h5redis-redis-data"
NETWORK = "h5redis-net"
IMAGE = "h5redis/redis:test"
CONFIG_DIR = Path("/var/lib/msgroute-rollout/h5redis")


@dataclass
class World:
    password: str

    def apply(self, *args: str) -> PlaybookRun:
        return run_playbook(
            SUITE / "apply.yml",
            *args,
            inventories=[SUITE / "inventory.yml"],
            env={"MSGROUTE_REDIS_PASSWORD": self.password},
            timeout=900,
            log_prefix="redis-",
        )

    def status_playbook(self) -> PlaybookRun:
        """playbooks/status.yml with the suite's Redis as the inventory's redis group."""
        return run_playbook(
            ROOT / "playbooks" / "status.yml",
            inventories=[SUITE / "inventory.yml", SUITE / "status_inventory.yml"],
            env={"MSGROUTE_REDIS_PASSWORD": self.password},
            timeout=300,
            log_prefix="redis-",
        )

    def cli(self, *command: str, password: str | None = None) -> str:
        """redis-cli in the container, as the given password (the world's by default; "" for none)."""
        auth = self.password if password is None else password
        env = ["-e", f"REDISCLI_AUTH={auth}"] if auth else []
        answer = docker("exec", *env, CONTAINER, "redis-cli", *command, check=False)
        return (answer.stdout + answer.stderr).strip()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        answer = ""
        while time.monotonic() < deadline:
            answer = self.cli("ping")
            if answer == "PONG":
                return
            time.sleep(0.5)
        raise AssertionError(f"{CONTAINER} did not answer PING within {timeout:g} s: {answer}")

    def status(self) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "status.json"
            run = self.apply("-e", "entry=status", "-e", f"status_file={path}")
            assert run.returncode == 0, run.output[-3000:]
            return json.loads(path.read_text())


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    world = World(secrets.token_urlsafe(24))
    deployed = world.apply()
    try:
        assert deployed.returncode == 0, deployed.output[-4000:]
        yield world
    finally:
        if not os.environ.get("MSGROUTE_REDIS_KEEP"):
            removed = world.apply("-e", "entry=absent")
            docker("network", "rm", NETWORK, check=False)
            docker("image", "rm", IMAGE, check=False)
            shutil.rmtree(CONFIG_DIR, ignore_errors=True)
            assert removed.returncode == 0, removed.output[-3000:]
