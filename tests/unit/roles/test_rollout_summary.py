"""The rollout role's summary tasks run by ansible-playbook on localhost only (no inventory of the Docker
world): the table is printed, report.html and timeline.png land in the default results directory - beside
the playbooks directory, wherever the caller stands."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import BIN, ROOT
from tests.unit.plugins.module_utils.report_samples import ROLLBACK_REASON, VERSION, rolled_back_run

PLAYBOOK = """\
- name: Summarise
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Summarise the run
      ansible.builtin.import_role:
        name: msgroute.rollout.rollout
        tasks_from: {tasks_from}
"""


@pytest.fixture(params=["summary", "end"])
def site(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A project: playbooks/summary.yml (the role's summary, or its end, which every phase playbook runs),
    results/ with a rolled-back run, and an inventory of localhost."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks/summary.yml").write_text(PLAYBOOK.format(tasks_from=request.param))
    (tmp_path / "results").mkdir()
    for name, data in rolled_back_run().items():
        (tmp_path / "results" / name).write_text(json.dumps(data))
    (tmp_path / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={BIN}/python\n"
    )
    return tmp_path


def play(site: Path, *extra: str) -> subprocess.CompletedProcess:
    # Started from another directory, with PWD saying so: the results must not follow the caller.
    elsewhere = site / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PWD": str(elsewhere)}
    command = [str(BIN / "ansible-playbook"), "-i", str(site / "hosts"), str(site / "playbooks/summary.yml")]
    command += ["-e", f"rollout_version={VERSION}", *extra]
    return subprocess.run(
        command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_summary_prints_the_table_and_writes_the_report_beside_the_playbooks(site):
    done = play(site)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = site / "results/report.html"
    assert "partial  50%" in done.stdout
    assert (
        f"DECISION: rolled back to legacy at partial 50% on 2026-12-01T10:04:21Z (Failed): {ROLLBACK_REASON}"
        in (done.stdout)
    )
    assert f"REPORT: {report}" in done.stdout
    assert report.is_file() and (site / "results/timeline.png").is_file()
    assert not (site / "elsewhere/results").exists()


def test_in_check_mode_the_summary_prints_and_writes_nothing(site):
    done = play(site, "--check")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"REPORT: {site / 'results/report.html'} (check mode: not written)" in done.stdout
    assert not (site / "results/report.html").exists()
