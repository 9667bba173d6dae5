"""The traffic suite's world: real nginx (the local image), real router containers, real load.

Everything lives under its own names (msgroute-t4-*), network (msgroute-t4), ports (28xxx) and data dir
(/var/lib/msgroute-rollout/t4), described by tests/traffic/inventory.yml, so the suite can run beside a local
rehearsal on the same engine; MSGROUTE_T4_ID and MSGROUTE_T4_PORT_BASE (e.g. t4dev, 28500) make a second copy,
so two runs of the suite can share the engine. tests/traffic/conftest.py builds it once per session and
removes it at the end (MSGROUTE_T4_KEEP=1 keeps it for a look); bench/traffic builds its own.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from ansible_collections.msgroute.rollout.plugins.module_utils.traffic_runtime import Client, Values

from router_app.loadgen import CookieFactory, Load, Tally
from tests.support import ROOT
from tests.support.images import base_image
from tests.support.metrics import Metrics, scrape
from tests.support.playbooks import PlaybookRun, run_playbook
from tests.support.processes import docker

SUITE = ROOT / "tests" / "traffic"
INVENTORY = SUITE / "inventory.yml"
IMAGE = os.environ.get("MSGROUTE_T4_NGINX_IMAGE", "msgroute/nginx:t4")
# A second copy of the world (another run of the suite on the same engine) takes another id and port base.
WORLD_ID = os.environ.get("MSGROUTE_T4_ID", "t4")
PORT_BASE = int(os.environ.get("MSGROUTE_T4_PORT_BASE", "28000"))
NETWORK = f"msgroute-{WORLD_ID}"
DATA_DIR = Path(f"/var/lib/msgroute-rollout/{WORLD_ID}")
NEW = (f"msgroute-{WORLD_ID}-router-1", f"msgroute-{WORLD_ID}-router-2")
LEGACY = (f"msgroute-{WORLD_ID}-legacy-1", f"msgroute-{WORLD_ID}-legacy-2")
CLIENT_TIMEOUT_S = 10.0
# rollout_guard_token of tests/traffic/inventory.yml.
GUARD_TOKEN = "t4-guard-token-0123456789abcdef"


def suite_message(rng: random.Random, msg_id: str) -> dict[str, Any]:
    """The same routine message every time: the suite checks the lb's split, not the classifier."""
    return {"id": msg_id, "source": "traffic-suite", "type": "telemetry"}


RUNTIME_LINE = re.compile(r"^[+ ]?\s+traffic\.init\(.*\[==\[(.*)\]==\].*msgroute:runtime$", re.M)


def runtime_line(text: str) -> dict[str, Any]:
    """The values of nginx.conf's runtime line (weights and members) found in ``text`` (a file or a diff)."""
    found = RUNTIME_LINE.findall(text)
    if not found:
        raise AssertionError(f"no runtime line in {text[-2000:]!r}")
    return json.loads(found[-1])


@dataclass(frozen=True)
class Lb:
    host: str
    container: str
    port: int
    metrics_port: int
    guard_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_dir(self) -> Path:
        return DATA_DIR / self.host.removeprefix("t4-")

    @property
    def conf(self) -> Path:
        return self.config_dir / "nginx.conf"

    @property
    def guard_url(self) -> str:
        return f"http://127.0.0.1:{self.guard_port}/_msgroute/guard"

    @property
    def guard_file(self) -> Path:
        return self.config_dir / "guard" / "guard.json"

    def runtime(self) -> dict[str, Any]:
        return Client(self.container, 8081).get()

    def set_runtime(self, new_weight: int, shadow_percent: int = 0) -> dict[str, Any]:
        return Client(self.container, 8081).put(Values(new_weight, shadow_percent))

    def recorded(self) -> dict[str, Any]:
        return json.loads((self.config_dir / "traffic.json").read_text())

    def conf_runtime(self) -> dict[str, Any]:
        """The run-time values nginx.conf carries for a cold start (its line tagged msgroute:runtime)."""
        return runtime_line(self.conf.read_text())

    def metrics(self) -> Metrics:
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def health(self) -> int:
        return requests.get(f"{self.url}/_msgroute/health", timeout=5).status_code

    def load(
        self,
        concurrency: int,
        rate: float = 0,
        total: int | None = None,
        cookie: CookieFactory | None = None,
        retry: bool = False,
    ) -> Load:
        """Kept-alive clients of this lb (not started yet); by default they never retry, the kind of client
        a reload hurts."""
        return Load(
            self.url,
            concurrency=concurrency,
            rate=rate,
            total=total,
            cookie=cookie,
            timeout=CLIENT_TIMEOUT_S,
            retry=retry,
            message=suite_message,
        )

    def send(self, total: int, concurrency: int, cookie: CookieFactory | None = None) -> Tally:
        """``total`` requests as fast as they are answered; what the clients saw."""
        return self.load(concurrency, total=total, cookie=cookie).start().wait()


LB1 = Lb("t4-lb1", f"msgroute-{WORLD_ID}-lb1", PORT_BASE + 80, PORT_BASE + 180, PORT_BASE + 146)
LB2 = Lb("t4-lb2", f"msgroute-{WORLD_ID}-lb2", PORT_BASE + 70, PORT_BASE + 170, PORT_BASE + 136)
LBS = (LB1, LB2)


def playbook(
    name: str, *args: str, inventories: tuple[Path, ...] = (INVENTORY,), timeout: float = 600
) -> PlaybookRun:
    """ansible-playbook tests/traffic/<name> on the suite's inventory; the output is kept under results/."""
    env = {
        "MSGROUTE_T4_NGINX_IMAGE": IMAGE,
        "MSGROUTE_T4_ID": WORLD_ID,
        "MSGROUTE_T4_PORT_BASE": str(PORT_BASE),
    }
    return run_playbook(
        SUITE / name, *args, inventories=inventories, env=env, timeout=timeout, log_prefix="traffic-"
    )


def apply(*extra: str, **variables: Any) -> PlaybookRun:
    """The traffic role on both lb hosts; keyword arguments become extra vars (JSON)."""
    return playbook("apply.yml", "-e", json.dumps(variables), *extra)


def applied(**variables: Any) -> PlaybookRun:
    run = apply(**variables)
    assert run.returncode == 0, run.output[-4000:]
    return run


def backends(*extra: str) -> None:
    run = playbook("backends.yml", *extra)
    assert run.returncode == 0, run.output[-4000:]


def build_world() -> None:
    """Image built, backends running, both lbs on legacy only with the runtime API answering."""
    build = docker(
        "build", "-q", "--build-arg", f"BASE_IMAGE={base_image()}", "-t", IMAGE,
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
