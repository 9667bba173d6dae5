"""The rollout's guards with real containers: phase order, the run lock, an unreachable Prometheus, bad
inventories and phases, and the manual pause."""

from __future__ import annotations

import json
import os
import socket

import pytest

from tests.support import ROOT
from tests.support.rollout import DATA_DIR, fresh_start, load, run_playbook, traffic_state

STATE = DATA_DIR / "lb" / "state.json"
LOCK = DATA_DIR / "lb" / "rollout.lock"
NGINX_CONF = DATA_DIR / "lb" / "nginx.conf"
FAST_GATE = {"interval": 1, "count": 2, "consecutive_error_limit": 1, "window": "5s"}


@pytest.fixture(scope="module", autouse=True)
def fresh():
    fresh_start()


def write_lock(pid: int, expires_in: float = 600) -> None:
    import time

    now = time.time()
    LOCK.write_text(
        json.dumps(
            {
                "owner": "someone-else",
                "run_id": "other-run",
                "playbook": "partial.yml",
                "since": now,
                "expires": now + expires_in,
                "controller": socket.gethostname(),
                "pid": pid,
            }
        )
    )


def test_partial_before_a_passed_shadow_is_refused_before_any_change():
    before = NGINX_CONF.read_text()
    run = run_playbook("partial.yml")
    assert run.returncode != 0
    assert "refusing partial of 2.0.0: its shadow phase has not passed" in run.output
    assert NGINX_CONF.read_text() == before
    assert traffic_state()["new_weight"] == 0


def test_a_live_concurrent_run_is_refused_naming_its_holder():
    write_lock(pid=os.getpid())  # this test process: alive
    try:
        run = run_playbook("shadow.yml")
        assert run.returncode != 0
        assert "another rollout holds the lock: someone-else runs partial.yml (run other-run)" in run.output
        assert json.loads(LOCK.read_text())["run_id"] == "other-run"
    finally:
        LOCK.unlink(missing_ok=True)


def test_the_lock_of_a_dead_run_is_recovered():
    write_lock(pid=2**22 + 7)  # above pid_max's default: no such process
    run = run_playbook("partial.yml")  # takes the lock, then stops at the phase order
    assert "no longer runs on this controller" in run.output
    assert "refusing partial" in run.output
    assert not LOCK.exists(), "the run released the lock it took over"


def test_prometheus_unreachable_never_promotes():
    extra = json.dumps(
        {"rollout_prometheus_url": "http://127.0.0.1:9", "rollout_analysis": {"shadow": FAST_GATE}}
    )
    run = run_playbook("shadow.yml", "-e", extra)
    assert run.returncode != 0
    assert "ROLLBACK shadow at 0%" in run.output
    assert "query failed" in run.output
    state = json.loads(STATE.read_text())
    assert state["status"] == "aborted"
    assert not [s for s in state["steps"] if s.get("verdict") == "Successful"]
    assert traffic_state() == {"new_weight": 0, "shadow_percent": 0, "legacy_enabled": True}


def test_an_inventory_without_a_required_group_is_refused(tmp_path):
    # The local inventory's variables, but no legacy group.
    (tmp_path / "group_vars").symlink_to(ROOT / "inventories/local/group_vars")
    inventory = tmp_path / "hosts.yml"
    hosts = {"localhost": {"ansible_connection": "local"}}
    groups = {"lb": {"hosts": {"localhost": None}}, "routers": {"hosts": {"localhost": None}}}
    inventory.write_text(json.dumps({"all": {"hosts": hosts, "children": groups}}))
    before = NGINX_CONF.read_text()
    run = run_playbook("shadow.yml", inventory=str(inventory))
    assert run.returncode != 0
    assert "Inventory group 'legacy' is missing or empty" in run.output
    assert NGINX_CONF.read_text() == before


def test_an_unknown_phase_is_refused():
    run = run_playbook("validate.yml", "-e", "rollout_phase=canary")
    assert run.returncode != 0
    assert "Unknown phase 'canary'" in run.output


def test_manual_pause_does_one_step_per_run():
    with load(rate=100):
        shadow = run_playbook("shadow.yml")
        assert shadow.returncode == 0, shadow.output[-3000:]
        first = run_playbook("partial.yml", "-e", "rollout_pause=manual")
        assert first.returncode == 0, first.output[-3000:]
        assert [line.split(":")[0] for line in first.gate_lines()] == ["GATE partial 25%"]
        assert "status paused; paused: run partial.yml again" in " ".join(first.output.split())
        assert traffic_state()["new_weight"] == 25
        second = run_playbook("partial.yml", "-e", "rollout_pause=manual")
        assert second.returncode == 0, second.output[-3000:]
        assert [line.split(":")[0] for line in second.gate_lines()] == ["GATE partial 50%"]
    assert traffic_state()["new_weight"] == 50
    assert json.loads(STATE.read_text())["weight"] == 50
