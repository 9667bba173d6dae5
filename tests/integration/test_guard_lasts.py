"""A rollback by the lb's guard lasts (issue 9, "The decision lasts"): the phase order, a run in progress,
status.yml and the summary honour it until a new shadow run acknowledges it.

Needs the guard on the lb (role traffic: POST /_msgroute/guard on 19146, bearer token from
inventories/local/.secrets/guard_token) - see docs/state.md and the guard's contract. The guard is fired here
directly with an Alertmanager v4 webhook, so the test does not wait for Prometheus and Alertmanager.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
import requests

from tests.support import RESULTS, ROOT
from tests.support.playbooks import PlaybookRun
from tests.support.rollout import DATA_DIR, fresh_start, load, route, run_playbook, traffic_state

VERSION = "2.0.0"
GUARD_URL = "http://127.0.0.1:19146/_msgroute/guard"
TOKEN_FILE = ROOT / "inventories/local/.secrets/guard_token"
GUARD_FILE = DATA_DIR / "lb" / "guard" / "guard.json"
STATE_FILE = DATA_DIR / "lb" / "state.json"
ALERT = "MsgrouteLatencyAboveTrigger"


def fire_guard(phase: str) -> None:
    """What Alertmanager sends for a firing rollback trigger of the version in force."""
    alert = {
        "status": "firing",
        "labels": {"alertname": ALERT, "rollout_action": "rollback", "version": VERSION, "phase": phase},
        "annotations": {"value": "81.2ms", "threshold": "65ms", "summary": "p95 above the rollback trigger"},
        "startsAt": "2026-12-02T07:00:00Z",
    }
    body = {"version": "4", "status": "firing", "receiver": "msgroute-guard", "alerts": [alert]}
    token = TOKEN_FILE.read_text().strip()
    answer = requests.post(GUARD_URL, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not guard_record().get("active"):
        time.sleep(0.2)
    assert guard_record().get("active"), "the guard recorded no rollback"


def guard_record() -> dict:
    return json.loads(GUARD_FILE.read_text()) if GUARD_FILE.exists() else {}


def state() -> dict:
    return json.loads(STATE_FILE.read_text())


def one_line(run: PlaybookRun) -> str:
    return " ".join(run.output.split())


@pytest.fixture(scope="module")
def guarded():
    """shadow, partial 50 % passed and ended; then the guard rolls 2.0.0 back with no playbook running."""
    fresh_start()
    with load(rate=100):
        shadow = run_playbook("shadow.yml")
        assert shadow.returncode == 0, shadow.output[-4000:]
        partial = run_playbook("partial.yml", "-e", "rollout_weight=50")
        assert partial.returncode == 0, partial.output[-4000:]
    fire_guard("partial")
    return guard_record()


def test_the_lb_serves_legacy_only_and_the_state_still_says_partial(guarded):
    assert guarded["version"] == VERSION and guarded["alert"] == ALERT
    pools = {route(f"after-guard-{n}").headers["X-Msgroute-Pool"] for n in range(50)}
    assert pools == {"legacy"}
    assert state()["phase"] == "partial" and state()["weight"] == 50, (
        "no playbook ran: the history is the lb's"
    )


@pytest.mark.parametrize("playbook", ["partial.yml", "full.yml"])
def test_partial_and_full_are_refused_with_the_guard_reason(guarded, playbook):
    before = STATE_FILE.read_text()
    run = run_playbook(
        playbook, "-e", "rollout_weight=75" if playbook == "partial.yml" else "rollout_force=true"
    )
    assert run.returncode != 0
    phase = playbook.removesuffix(".yml")
    assert f"refusing {phase} of {VERSION}: rolled back by guard: {ALERT} (81.2ms vs 65ms) at " in one_line(
        run
    )
    assert "run shadow.yml to start again" in one_line(run)
    assert STATE_FILE.read_text() == before
    assert not (DATA_DIR / "lb" / "rollout.lock").exists()


def test_status_reports_it_and_exits_non_zero(guarded):
    run = run_playbook("status.yml")
    assert run.returncode != 0
    out = one_line(run)
    assert f"rolled back by guard: {ALERT} (81.2ms vs 65ms) at " in out
    assert "DECISION: rolled back by guard: " in out and "from partial 50% to legacy" in out


def test_an_nginx_restart_keeps_it(guarded):
    subprocess.run(["docker", "restart", "msgroute-lb"], check=True, capture_output=True, timeout=60)
    time.sleep(2)
    run = run_playbook("partial.yml", "-e", "rollout_weight=75")
    assert run.returncode != 0 and "rolled back by guard" in one_line(run)


def test_a_new_shadow_acknowledges_it_and_opens_partial_again(guarded):
    with load(rate=100):
        shadow = run_playbook("shadow.yml")
        assert shadow.returncode == 0, shadow.output[-4000:]
        assert "GATE shadow 0%: Successful" in " ".join(shadow.gate_lines()), "the shadow ran again"
        steps = state()["steps"]
        acknowledged = [s for s in steps if s.get("verdict") == "Guard"]
        assert acknowledged and acknowledged[-1]["guard"][0]["alert"] == ALERT
        assert (
            acknowledged[-1]["guard"][0]["value"] == "81.2ms"
            and acknowledged[-1]["guard"][0]["threshold"] == "65ms"
        )
        assert not guard_record().get("active"), "the lb cleared its record"
        status = run_playbook("status.yml")
        assert "rolled back by guard" not in one_line(status).split("DECISION", maxsplit=1)[0]
        partial = run_playbook("partial.yml", "-e", "rollout_weight=25")
        assert partial.returncode == 0, partial.output[-4000:]


def test_a_run_in_progress_stops_at_its_next_step_with_the_reason():
    """partial 25 → 50 running; the guard acts during step 25's analysis: the run stops, 50 never applies."""
    fresh_start()
    decision = RESULTS / "rollback_decision.json"
    decision.unlink(missing_ok=True)
    result: dict[str, PlaybookRun] = {}
    with load(rate=100):
        shadow = run_playbook("shadow.yml")
        assert shadow.returncode == 0, shadow.output[-4000:]
        worker = threading.Thread(
            target=lambda: result.update(run=run_playbook("partial.yml", "-e", '{"rollout_steps": [25, 50]}'))
        )
        worker.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and traffic_state().get("new_weight") != 25:
            time.sleep(0.5)
        assert traffic_state().get("new_weight") == 25, "step 25 never started"
        fire_guard("partial")
        worker.join(timeout=900)
    run = result["run"]
    assert run.returncode != 0
    out = one_line(run)
    assert f"STOPPED partial at 25%: rolled back by guard: {ALERT} (81.2ms vs 65ms) at " in out
    assert "GATE partial 50%" not in out
    written = json.loads(decision.read_text())
    assert written["verdict"] == "Guard" and written["reason"].startswith("rolled back by guard: ")
    assert state()["steps"][-1]["verdict"] == "Guard"
    assert not (DATA_DIR / "lb" / "rollout.lock").exists()
