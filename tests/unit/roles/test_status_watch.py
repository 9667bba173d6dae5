"""status.yml -e rollout_status_watch=N, run by ansible-playbook on localhost against two lb hosts with a fake
docker (lb_site.py): the pre-flight refuses a watch out of range, the watch looks again every N seconds and
stops by itself within rollout_status_watch_for, and the exit code is the last look's."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import BIN, ROOT
from tests.unit.plugins.module_utils.guard_samples import REASON, guard
from tests.unit.roles.lb_site import history, lbs, nginx, passed, play

STATUS = str(ROOT / "playbooks/status.yml")
LOOK = re.compile(r"look: (\d+) of (\d+) at ")


def watch(every: object, bound: object) -> list[str]:
    return ["-e", f"rollout_status_watch={every}", "-e", f"rollout_status_watch_for={bound}"]


@pytest.mark.parametrize(
    ("every", "bound", "refusal"),
    [
        ("0.5", 300, "rollout_status_watch: expected a whole number from 0 to 3600, got '0.5'"),
        (-1, 300, "rollout_status_watch: must be from 0 to 3600, got '-1'"),
        (3601, 86400, "rollout_status_watch: must be from 0 to 3600, got '3601'"),
        (5, 0, "rollout_status_watch_for: must be from 1 to 86400, got '0'"),
        (60, 86401, "rollout_status_watch_for: must be from 1 to 86400, got '86401'"),
        (10, 5, "rollout_status_watch_for: 5 s is shorter than rollout_status_watch (10 s)"),
        (5, 86400, "a look every 5 s for 86400 s is 17281 looks, more than 1441; look less often "),
    ],
)
def test_the_pre_flight_refuses_a_watch_out_of_range(site: Path, every: object, bound: object, refusal: str):
    done = play(site, STATUS, *watch(every, bound))
    assert done.returncode != 0
    out = " ".join(done.stdout.split())
    assert "Refusing the run before anything changes: " in out and refusal in out, done.stdout[-3000:]
    assert not LOOK.search(out), "no look is taken"


def test_the_watch_looks_every_n_seconds_and_stops_by_itself_at_its_bound(site: Path):
    lbs(site, lb1=nginx(None), lb2=nginx(None))
    for lb in ("lb1", "lb2"):
        history(site, lb, passed("shadow", 0))
    started = time.monotonic()
    done = play(site, STATUS, *watch(5, 10))
    took = time.monotonic() - started
    out = " ".join(done.stdout.split())
    looks = [(int(k), int(n)) for k, n in LOOK.findall(out)]
    # Planned at 0, 5 and 10 s. A look takes seconds here: the bound may end the watch before the third.
    assert looks[:2] == [(1, 3), (2, 3)], done.stdout[-3000:]
    assert len(looks) <= 3 and [k for k, _n in looks] == list(range(1, len(looks) + 1))
    assert out.count("PHASE WEIGHT VERDICT") == len(looks), "the summary table at every look"
    healths = out.split("TASK [Say this look's health]")[1:]
    assert len(healths) == len(looks)
    assert all("msg: 'DEGRADED: 2 lb host(s) with nginx not answering" in health for health in healths)
    assert took < 10 + 60, "stopped by itself (the bound, plus one look and Ansible's start)"
    assert done.returncode != 0


@pytest.fixture
def answering(site: Path) -> Iterator[None]:
    """nginx's health endpoint and the legacy instance's /ready answer 200 (the new pool has no traffic)."""
    hosts = json.loads((site / "hosts.yml").read_text())["all"]["vars"]

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    servers = [
        http.server.ThreadingHTTPServer(("127.0.0.1", hosts[name]), Ok)
        for name in ("traffic_listen_port", "legacy_base_port")
    ]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_exit_code_is_the_last_look_s(site: Path, answering: None):
    # The first look sees lb1's guard rollback, cleared before the second look: the watch ends healthy.
    # Two looks, 15 s apart (a look takes a few seconds).
    lbs(site, lb1=nginx(guard()), lb2=nginx(None))
    for lb in ("lb1", "lb2"):
        history(site, lb, passed("shadow", 0))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }
    command = [str(BIN / "ansible-playbook"), "-i", str(site / "hosts.yml"), STATUS, *watch(15, 15)]
    with subprocess.Popen(
        command, cwd=site, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "TASK [Say this look's health]" in line:
                break
        lbs(site, lb1=nginx(None))
        rest = proc.communicate(timeout=300)[0]
    out = " ".join("".join([*lines, rest]).split())
    looks = LOOK.findall(out)
    assert looks == [("1", "2"), ("2", "2")], out[-3000:]
    first, last = out.split("look: 2 of 2", 1)
    assert f"msg: '{REASON}'" in first.split("TASK [Say this look's health]", 1)[1]
    assert "msg: HEALTHY" in last and REASON not in last.split("TASK [Say this look's health]", 1)[1]
    assert proc.returncode == 0, out[-3000:]
