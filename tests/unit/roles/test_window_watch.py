"""full.yml's post-promotion window (role traffic, entry point watch), run by ansible-playbook on localhost
against two lb hosts with a fake docker (lb_site.py): one readable line a look and no "FAILED - RETRYING"; the
wait ends at the first look that finds the guard's record in force; query.yml still asks once."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

from tests.unit.plugins.module_utils.guard_samples import REASON, guard
from tests.unit.roles.lb_site import lbs, nginx, play

WATCH = """\
- name: Window
  hosts: lb
  gather_facts: false
  tasks:
    - name: Keep legacy ready for the guard
      ansible.builtin.include_role:
        name: msgroute.rollout.traffic
        tasks_from: watch
      vars:
        traffic_query_wait: "{{ wait }}"
        traffic_query_poll: 1

    - name: Say what the last look found
      ansible.builtin.debug:
        msg: "LAST {{ inventory_hostname }} {{ traffic_query.after.guard_in_force | default(False) }}"
"""
LOOK = re.compile(r"\(item=LOOK (\d+)/(\d+) \S+Z (lb\d): (.*)\)$", re.MULTILINE)


def looks(stdout: str, lb: str) -> list[tuple[int, int, str]]:
    return [(int(k), int(n), said) for k, n, host, said in LOOK.findall(stdout) if host == lb]


def asked(site: Path, lb: str) -> int:
    calls = site / "docker" / f"t-{lb}.calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_the_window_says_one_line_a_look_and_runs_its_length_when_the_guard_stays_quiet(site: Path) -> None:
    lbs(site, lb1=nginx(None, new_weight=100), lb2=nginx(None, new_weight=100))
    (site / "watch.yml").write_text(WATCH)
    done = play(site, str(site / "watch.yml"), "-e", "wait=2")
    assert done.returncode == 0, done.stdout[-4000:]
    out = " ".join(done.stdout.split())
    for lb in ("lb1", "lb2"):
        assert looks(done.stdout, lb) == [
            (k, 3, "new 100 %, shadow 0 %; no rollback by the guard") for k in (1, 2, 3)
        ]
        assert f"LAST {lb} False" in out
    assert "RETRYING" not in done.stdout and "FAILED" not in done.stdout


def test_the_window_ends_at_the_look_that_finds_the_guard_in_force(site: Path) -> None:
    lbs(site, lb1=nginx(None, new_weight=100), lb2=nginx(None, new_weight=100))
    (site / "watch.yml").write_text(WATCH)

    def guard_acts() -> None:
        # Alertmanager sends the alert to every lb guard: each sets its nginx to legacy and keeps its record.
        while min(asked(site, "lb1"), asked(site, "lb2")) < 2 and time.monotonic() < started + 200:
            time.sleep(0.2)
        state = {**nginx(guard(), new_weight=0), "guard_in_force": True}
        for lb in ("lb1", "lb2"):
            (site / "docker" / f"t-{lb}.json").write_text(json.dumps(state))

    started = time.monotonic()
    acting = threading.Thread(target=guard_acts)
    acting.start()
    done = play(site, str(site / "watch.yml"), "-e", "wait=120")
    took = time.monotonic() - started
    acting.join()
    assert done.returncode == 0, done.stdout[-4000:]
    out = " ".join(done.stdout.split())
    for lb in ("lb1", "lb2"):
        seen = looks(done.stdout, lb)
        assert seen[-1][2] == f"{REASON}; the wait ends", done.stdout[-4000:]
        assert all(said == "new 100 %, shadow 0 %; no rollback by the guard" for _k, _n, said in seen[:-1])
        assert [k for k, _n, _said in seen] == list(range(1, len(seen) + 1)) and seen[0][1] == 121
        assert 2 <= len(seen) < 121, "quiet looks, then the one that ends the wait"
        assert f"LAST {lb} True" in out
    assert took < 90, "the 120 s window ended early"
    assert "RETRYING" not in done.stdout
