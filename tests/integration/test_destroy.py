"""destroy.yml removes what the roles created by the names the inventory gives them, and nothing else."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support.rollout import run_playbook

PREFIX = "msgroute-t8d"
DATA = Path("/var/lib/msgroute-rollout/t8d")
RENAMED = {
    "rollout_network": PREFIX,
    "rollout_data_dir": str(DATA),
    "traffic_container_name": f"{PREFIX}-lb",
    "loadgen_container_name": f"{PREFIX}-loadgen",
    "monitoring_container_name": f"{PREFIX}-prometheus",
    "monitoring_data_volume": f"{PREFIX}-data",
    "monitoring_alertmanager_container_name": f"{PREFIX}-alertmanager",
    "monitoring_alertmanager_data_volume": f"{PREFIX}-am-data",
    "router_name_prefix": f"{PREFIX}-router",
    "legacy_name_prefix": f"{PREFIX}-legacy",
    "router_instances": 2,
    "legacy_instances": 1,
}
ROLES = ("lb", "loadgen", "prometheus", "alertmanager", "router-1", "router-2", "legacy-1")
CONTAINERS = [f"{PREFIX}-{name}" for name in ROLES]


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def router_image() -> str:
    images = docker("images", "msgroute/router", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert images, "no msgroute/router image: run playbooks/prepare.yml first"
    return images[0]


def local_world() -> list[str]:
    names = docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    local = re.compile(r"^msgroute-(lb|router-[0-9]+|legacy-[0-9]+|prometheus|alertmanager)$")
    return sorted(n for n in names if local.match(n))


def exists(kind: str, name: str) -> bool:
    return docker(kind, "inspect", name, check=False).returncode == 0


def test_destroy_follows_renamed_containers_volumes_networks_and_dirs():
    image = router_image()
    docker("network", "create", PREFIX)
    for volume in (f"{PREFIX}-data", f"{PREFIX}-am-data"):
        docker("volume", "create", volume)
    for name in CONTAINERS:
        docker("run", "-d", "--name", name, "--network", PREFIX, "--entrypoint", "sleep", image, "600")
    for sub in ("lb", "prometheus", "alertmanager"):
        (DATA / sub).mkdir(parents=True, exist_ok=True)
        (DATA / sub / "marker").write_text("x")
    local_before = local_world()

    run = run_playbook("destroy.yml", "-e", "destroy_confirm=true", "-e", json.dumps(RENAMED))

    assert run.returncode == 0, run.output[-3000:]
    assert [name for name in CONTAINERS if exists("container", name)] == []
    assert not exists("volume", f"{PREFIX}-data")
    assert not exists("volume", f"{PREFIX}-am-data")
    assert not exists("network", PREFIX)
    assert not (DATA / "lb").exists()
    assert not (DATA / "prometheus").exists()
    assert not (DATA / "alertmanager").exists()
    # The default-named world of inventories/local is untouched.
    assert local_world() == local_before
