"""Every bad setting is refused in pre-flight, on the controller, before the lock is taken: a refused run
changes no container, no nginx value, no file and no state, and says which setting and why."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils import traffic_runtime

from tests.support.rollout import DATA_DIR, run_playbook

LB = DATA_DIR / "lb"
# The containers of inventories/local (other suites' containers on the same engine are not this world's).
LOCAL_CONTAINERS = re.compile(r"^msgroute-(lb|router-[0-9]+|legacy-[0-9]+|prometheus|loadgen)$")


def world() -> dict[str, object]:
    """What a run could change: every rollout container (id, start time, running), the files on the lb, the
    lock, and the weights nginx serves at run time."""
    listed = subprocess.run(
        ["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True
    ).stdout.split()
    names = [name for name in listed if LOCAL_CONTAINERS.match(name)]
    containers = {}
    if names:
        inspect = subprocess.run(["docker", "inspect", *names], capture_output=True, check=True)
        inspected = json.loads(inspect.stdout)
        containers = {c["Name"]: (c["Id"], c["State"]["StartedAt"], c["State"]["Running"]) for c in inspected}
    files = {p.name: p.read_text() for p in sorted(LB.iterdir()) if p.is_file()}
    runtime = traffic_runtime.Client("msgroute-lb", 8081).get()
    return {
        "containers": containers,
        "files": files,
        "runtime": {k: runtime[k] for k in ("new_weight", "shadow_percent", "generation")},
    }


@pytest.fixture(scope="module")
def prepared():
    if not (LB / "nginx.conf").exists():
        run = run_playbook("prepare.yml")
        assert run.returncode == 0, run.output[-3000:]


# (playbook, extra vars, what the refusal must say)
REFUSED = [
    ("shadow.yml", {"rollout_shadow_percent": 150}, "rollout_shadow_percent: must be from 1 to 100, got"),
    ("shadow.yml", {"rollout_shadow_percent": 0}, "rollout_shadow_percent: must be from 1 to 100"),
    ("shadow.yml", {"rollout_shadow_percent": "ten"}, "rollout_shadow_percent: expected a whole number"),
    ("shadow.yml", {"router_instances": 0}, "router_instances: the new pool needs at least one instance"),
    ("partial.yml", {"router_instances": "two"}, "router_instances must be an integer, got 'two'"),
    ("partial.yml", {"rollout_steps": [50, 25]}, "rollout_steps: steps must rise strictly"),
    (
        "partial.yml",
        {"rollout_thresholds": {"partial": {"max_p95_ms": -1}}},
        "rollout_thresholds.partial: thresholds.max_p95_ms: must be > 0, got -1",
    ),
    (
        "shadow.yml",
        {"rollout_thresholds": {"full": {"min_success_rate": "high"}}},
        "rollout_thresholds.full: thresholds.min_success_rate: expected a number",
    ),
    ("full.yml", {"rollout_analysis": {"full": {"count": -1}}}, "rollout_analysis.full.count: must be"),
    ("full.yml", {"rollout_analysis": {"full": {"interval": -5}}}, "rollout_analysis.full.interval"),
    ("partial.yml", {"rollout_analysis": {"partial": {"cnt": 3}}}, "rollout_analysis.partial.cnt: unknown"),
    ("shadow.yml", {"traffic_listen_port": 70000}, "localhost: traffic_listen_port: must be from 1 to 65535"),
    ("partial.yml", {"monitoring_listen_port": 0}, "localhost: monitoring_listen_port: must be from 1 to"),
    ("partial.yml", {"router_base_port": 65535, "router_instances": 2}, "exceeds port 65535"),
    ("prepare.yml", {"rollout_thresholds": {"canary": {}}}, "rollout_thresholds.canary: unknown phase"),
]


@pytest.mark.parametrize(("playbook", "extra", "says"), REFUSED, ids=[f"{p}:{e}" for p, e, _says in REFUSED])
def test_a_bad_setting_is_refused_before_anything_changes(prepared, playbook, extra, says):
    before = world()
    run = run_playbook(playbook, "-e", json.dumps(extra))
    assert run.returncode != 0
    assert says in run.output, run.output[-3000:]
    # Refused in the first play, on the controller: no lb task ran, so no lock was taken either.
    assert "Lock, check the phase order" not in run.output
    assert world() == before


def test_every_refused_setting_is_named_at_once(prepared):
    extra = {"rollout_shadow_percent": 150, "router_instances": 0, "traffic_listen_port": 0}
    run = run_playbook("shadow.yml", "-e", json.dumps(extra))
    assert run.returncode != 0
    for name in ("rollout_shadow_percent", "router_instances", "traffic_listen_port"):
        assert name in run.output
