"""Two lb hosts on localhost for ansible-playbook runs of the roles and playbooks: their nginx is a fake
``docker`` (fake_docker.py) answering the runtime API from a JSON file each, so no container runs; routers and
legacy are in the inventory but nothing listens on their ports. ``site`` (conftest.py) makes one per test."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support import BIN, ROOT
from tests.support.net import free_port
from tests.unit.plugins.module_utils.guard_samples import VERSION

HERE = Path(__file__).resolve().parent


def preflight(phase: str) -> str:
    """A play of the pre-flight of ``phase`` (a name, or a template such as ``{{ phase }}``)."""
    return f"""\
- name: Pre-flight
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan the run
      ansible.builtin.import_role:
        name: msgroute.rollout.rollout
        tasks_from: preflight
      vars:
        rollout_run_phase: "{phase}"
        rollout_run_playbook: "{phase}.yml"

"""


# The partial gate of a 50 % step on the lb hosts (rollout_step, entry point analyse), after its pre-flight.
PARTIAL_GATE = (
    preflight("partial")
    + """\
- name: Gate
  hosts: lb
  gather_facts: false
  tasks:
    - name: Run the partial gate of a 50 % step
      ansible.builtin.import_role:
        name: msgroute.rollout.rollout_step
        tasks_from: analyse
      vars:
        rollout_step_phase: partial
        rollout_step_label: partial 50%
"""
)


BEGIN = (
    preflight("{{ phase }}")
    + """\
- name: Begin
  hosts: lb
  gather_facts: false
  tasks:
    - name: Lock, check the phase order, work out what is left
      ansible.builtin.import_role:
        name: msgroute.rollout.rollout
        tasks_from: begin
"""
)


def nginx(guard_record: dict | str | None, new_weight: int = 0) -> dict:
    state = {"new_weight": new_weight, "shadow_percent": 0, "has_new": True, "has_legacy": True}
    if guard_record != "absent":
        state.update(version=VERSION, guard=guard_record)
    return state


def make_site(tmp_path: Path) -> Path:
    """Inventory (lb1, lb2 local; routers and legacy never contacted), fake docker, state directories."""
    docker = tmp_path / "docker" / "fake_docker.py"
    docker.parent.mkdir()
    docker.write_text(f"#!{BIN}/python\n" + (HERE / "fake_docker.py").read_text())
    docker.chmod(0o755)
    (tmp_path / "hosts.yml").write_text(
        json.dumps(
            {
                "all": {
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": f"{BIN}/python",
                        "traffic_docker_command": str(docker),
                        "rollout_version": VERSION,
                        # Pre-flight refuses lb hosts without the guard's token (never a real one here).
                        "rollout_guard_token": "unit-test-guard-token-0123456789",
                        "rollout_results_dir": str(tmp_path / "results"),
                        # Nothing listens on these: status's probes are refused at once.
                        "traffic_listen_port": free_port(),
                        "router_instances": 1,
                        "router_base_port": free_port(),
                        "legacy_instances": 1,
                        "legacy_base_port": free_port(),
                    },
                    "children": {
                        "lb": {
                            "hosts": {
                                lb: {
                                    "traffic_container_name": f"t-{lb}",
                                    "rollout_state_dir": str(tmp_path / lb),
                                }
                                for lb in ("lb1", "lb2")
                            }
                        },
                        "routers": {"hosts": {"r1": {"ansible_host": "127.0.0.1"}}},
                        "legacy": {"hosts": {"l1": {"ansible_host": "127.0.0.1"}}},
                    },
                }
            }
        )
    )
    (tmp_path / "begin.yml").write_text(BEGIN)
    return tmp_path


def lbs(site: Path, **states: dict) -> None:
    for lb, state in states.items():
        (site / "docker" / f"t-{lb}.json").write_text(json.dumps(state))


def history(site: Path, lb: str, *steps: dict) -> None:
    (site / lb).mkdir(exist_ok=True)
    state = {
        "version": VERSION,
        "phase": "partial",
        "weight": 50,
        "status": "progressing",
        "steps": list(steps),
    }
    (site / lb / "state.json").write_text(json.dumps(state))


def passed(phase: str, weight: int) -> dict:
    return {"phase": phase, "weight": weight, "verdict": "Successful", "version": VERSION}


def play(site: Path, playbook: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    command = [str(BIN / "ansible-playbook"), "-i", str(site / "hosts.yml"), playbook, *extra]
    return subprocess.run(
        command, cwd=site, env=env, capture_output=True, text=True, timeout=300, check=False
    )
