"""The traffic suite's world: real nginx (the local image), real router containers, real load.

Everything lives under its own names (msgroute-t4-*), network (msgroute-t4), ports (28xxx) and data dir
(/var/lib/msgroute-rollout/t4), described by tests/traffic/inventory.yml, so the suite can run beside a local
rehearsal on the same engine; MSGROUTE_T4_ID and MSGROUTE_T4_PORT_BASE (e.g. t4dev, 28500) make a second copy,
so two runs of the suite can share the engine. The world is built once per session and removed at the end
(MSGROUTE_T4_KEEP=1 keeps it for a look).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

from ansible_collections.msgroute.rollout.plugins.module_utils.traffic_runtime import (
    Client,
    Values,
)

BIN = Path(sys.executable).parent
INVENTORY = HERE / "inventory.yml"
IMAGE = os.environ.get("MSGROUTE_T4_NGINX_IMAGE", "msgroute/nginx:t4")
# A second copy of the world (another run of the suite on the same engine) takes another id and port base.
WORLD_ID = os.environ.get("MSGROUTE_T4_ID", "t4")
PORT_BASE = int(os.environ.get("MSGROUTE_T4_PORT_BASE", "28000"))
NETWORK = f"msgroute-{WORLD_ID}"
DATA_DIR = Path(f"/var/lib/msgroute-rollout/{WORLD_ID}")
LOGS = ROOT / "results" / "test-logs"
NEW = (f"msgroute-{WORLD_ID}-router-1", f"msgroute-{WORLD_ID}-router-2")
LEGACY = (f"msgroute-{WORLD_ID}-legacy-1", f"msgroute-{WORLD_ID}-legacy-2")


@dataclass(frozen=True)
class Lb:
    host: str
    container: str
    port: int
    metrics_port: int

    @property
    def config_dir(self) -> Path:
        return DATA_DIR / self.host.removeprefix("t4-")

    @property
    def conf(self) -> Path:
        return self.config_dir / "nginx.conf"

    def runtime(self) -> dict[str, Any]:
        return Client(self.container, 8081).get()

    def set_runtime(self, new_weight: int, shadow_percent: int = 0) -> dict[str, Any]:
        return Client(self.container, 8081).put(Values(new_weight, shadow_percent))

    def recorded(self) -> dict[str, Any]:
        return json.loads((self.config_dir / "traffic.json").read_text())

    def metrics(self) -> dict[str, float]:
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def health(self) -> int:
        return requests.get(f"http://127.0.0.1:{self.port}/_msgroute/health", timeout=5).status_code


LB1 = Lb("t4-lb1", f"msgroute-{WORLD_ID}-lb1", PORT_BASE + 80, PORT_BASE + 180)
LB2 = Lb("t4-lb2", f"msgroute-{WORLD_ID}-lb2", PORT_BASE + 70, PORT_BASE + 170)
LBS = (LB1, LB2)


@dataclass
class Run:
    returncode: int
    output: str

    def changed(self, host: str) -> int:
        for line in self.output.splitlines():
            if line.startswith(host + " ") and "changed=" in line:
                return int(line.split("changed=")[1].split()[0])
        raise AssertionError(f"no recap for {host}:\n{self.output[-3000:]}")


def playbook(
    name: str, *args: str, inventories: tuple[Path, ...] = (INVENTORY,), timeout: float = 600
) -> Run:
    """ansible-playbook tests/traffic/<name> on the suite's inventory; the output is kept under results/."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    env.update(MSGROUTE_T4_NGINX_IMAGE=IMAGE, MSGROUTE_T4_ID=WORLD_ID, MSGROUTE_T4_PORT_BASE=str(PORT_BASE))
    command = [str(BIN / "ansible-playbook")]
    for inventory in inventories:
        command += ["-i", str(inventory)]
    command += [str(HERE / name), *args]
    proc = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"traffic-{time.strftime('%H%M%S')}-{name}.log").write_text(
        " ".join(command) + "\n" + proc.stdout + proc.stderr
    )
    return Run(proc.returncode, proc.stdout + proc.stderr)


def apply(*extra: str, **variables: Any) -> Run:
    """The traffic role on both lb hosts; keyword arguments become extra vars (JSON)."""
    return playbook("apply.yml", "-e", json.dumps(variables), *extra)


def applied(**variables: Any) -> Run:
    run = apply(**variables)
    assert run.returncode == 0, run.output[-4000:]
    return run


def backends(*extra: str) -> None:
    run = playbook("backends.yml", *extra)
    assert run.returncode == 0, run.output[-4000:]


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120)


def _base_image() -> str:
    """The local Debian base the images role built (images_build_base), newest first."""
    if os.environ.get("MSGROUTE_T4_BASE_IMAGE"):
        return os.environ["MSGROUTE_T4_BASE_IMAGE"]
    tags = docker(
        "images", "local/debian", "--format", "{{.CreatedAt}}\t{{.Repository}}:{{.Tag}}"
    ).stdout.split("\n")
    refs = [line.split("\t")[1] for line in sorted(filter(None, tags), reverse=True) if ":bookworm" in line]
    if not refs:
        pytest.fail(
            "no local/debian:bookworm-* base image: run `make prepare` (or set MSGROUTE_T4_BASE_IMAGE)"
        )
    return refs[0]


def build_world() -> None:
    """Image built, backends running, both lbs on legacy only with the runtime API answering."""
    build = docker(
        "build", "-q", "--build-arg", f"BASE_IMAGE={_base_image()}", "-t", IMAGE,
        str(ROOT / "roles/images/files/nginx"), check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    remove_world()
    backends()
    applied(weight=0, shadow=0)


def remove_world() -> None:
    names = [lb.container for lb in LBS] + list(NEW) + list(LEGACY)
    docker("rm", "-f", *names, check=False)
    docker("network", "rm", NETWORK, check=False)
    shutil.rmtree(DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def world():
    build_world()
    yield LBS
    if not os.environ.get("MSGROUTE_T4_KEEP"):
        remove_world()


# Set when a test killed or changed the new routers; whoever needs them as they should be calls
# normal_new_routers() (test_pool_failures runs last, so usually nobody pays for the repair).
_new_routers_altered = False


def altered_new_routers() -> None:
    global _new_routers_altered
    _new_routers_altered = True


def normal_new_routers() -> None:
    """New routers as they should be (recreated, whatever a test did to them), nginx pointed at them."""
    global _new_routers_altered
    if not _new_routers_altered:
        return
    # Recreated rather than updated: the router role keeps environment variables it no longer sets.
    docker("rm", "-f", *NEW)
    backends("--limit", "routers")
    applied(weight=0, shadow=0)
    _new_routers_altered = False
