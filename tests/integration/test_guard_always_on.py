"""The always-on guard with every real part: Prometheus rules -> Alertmanager -> the guard in each lb's nginx.

A release that passed its step and whose playbook has ended degrades at run time (latency injected through
the routers' admin API); with no playbook running, the alert fires, Alertmanager delivers it to the guard and
the guard puts every request back on legacy, records why, and the record outlives an nginx restart, refuses
the next promotion and makes status.yml fail until a new shadow acknowledges it. A second world kills
ansible-playbook in the middle of a step and breaches one message class only; on it, a run in progress
stops at its next step when the guard acts (the webhook sent as Alertmanager sends it, to save a wait).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
import requests

from tests.support import BIN, RESULTS, ROOT
from tests.support.monitoring import alert, webhook
from tests.support.playbooks import PlaybookRun
from tests.support.rollout import (
    DATA_DIR,
    INVENTORY,
    all_legacy,
    fresh_start,
    guard_record,
    lb_weights,
    load,
    run_playbook,
    set_faults,
    wait_for,
)

ALERT = "MsgrouteLatencyAboveTrigger"
GUARD_URL = "http://127.0.0.1:19146/_msgroute/guard"
STATE = DATA_DIR / "lb" / "state.json"
LOCK = DATA_DIR / "lb" / "rollout.lock"
ADMIN_TOKEN = secrets.token_urlsafe(24)
# Bounded waits for behaviour (the local rules fire after 5 s; Alertmanager waits 1 s): generous, never timed.
GUARD_WAIT = 120


def state() -> dict[str, Any]:
    return json.loads(STATE.read_text())


def fire_guard(phase: str) -> None:
    """What Alertmanager sends for a firing rollback trigger of the version in force, with the token."""
    token = (ROOT / INVENTORY / ".secrets" / "guard_token").read_text().split()[0]
    answer = requests.post(
        GUARD_URL,
        data=webhook(alert(phase=phase, name=ALERT)),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    wait_for(guard_record, 5, "the guard's record")


def lb_answers() -> bool:
    try:
        return requests.get("http://127.0.0.1:18080/_msgroute/health", timeout=2).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def after_partial():
    """partial 50 % passed and its playbook ended; then +100 ms at run time, nothing of ours running."""
    fresh_start()
    token = ["-e", f"router_admin_token={ADMIN_TOKEN}"]
    with load(rate=100) as seen:
        shadow = run_playbook("shadow.yml", *token)
        assert shadow.returncode == 0, shadow.output[-4000:]
        partial = run_playbook("partial.yml", "-e", "rollout_weight=50", *token)
        assert partial.returncode == 0, partial.output[-4000:]
        assert lb_weights() == (50, 0)
        assert guard_record() is None
        set_faults(ADMIN_TOKEN, latency_ms=100)
        record = wait_for(guard_record, GUARD_WAIT, "a guard rollback after +100 ms")
        weights = wait_for(lambda: lb_weights() == (0, 0), 10, "weight and shadow 0 on the lb")
        time.sleep(3)  # a few seconds of legacy-only traffic in the clients' figures
    set_faults(ADMIN_TOKEN, latency_ms=0)
    return {"record": record, "weights": weights, "clients": seen.summary, "partial": partial}


def test_a_breach_after_the_play_ended_puts_traffic_back_on_legacy(after_partial):
    assert after_partial["weights"]
    all_legacy("after-guard")


def test_the_record_says_which_alert_value_and_threshold(after_partial):
    record = after_partial["record"]
    assert record["alert"] == "MsgrouteLatencyAboveTrigger"
    assert record["version"] == "2.0.0"
    assert record["phase"] == "partial"
    assert record["threshold"] == "65ms"
    assert record["value"].endswith("ms")
    assert record["weights_before"] == {"new_weight": 50, "shadow_percent": 0}


def test_clients_lost_nothing_while_the_guard_switched(after_partial):
    clients = after_partial["clients"]
    assert clients["responses"] > 500
    assert set(clients["by_status"]) == {"200"}, clients["by_status"]
    assert clients.get("errors", 0) == 0, clients


def test_an_nginx_restart_still_serves_legacy_only(after_partial):
    subprocess.run(["docker", "restart", "msgroute-lb"], check=True, capture_output=True, timeout=60)
    wait_for(lb_answers, 30, "nginx back")
    assert lb_weights() == (0, 0)
    all_legacy("after-restart")


def test_no_playbook_ran_so_the_history_still_says_partial(after_partial):
    assert state()["phase"] == "partial" and state()["weight"] == 50


@pytest.mark.parametrize("playbook", ["partial.yml", "full.yml"])
def test_the_next_promotion_is_refused_with_the_guards_reason(after_partial, playbook):
    before = STATE.read_text()
    run = run_playbook(
        playbook, "-e", "rollout_weight=75" if playbook == "partial.yml" else "rollout_force=true"
    )
    assert run.returncode != 0
    out = run.flat
    phase = playbook.removesuffix(".yml")
    assert f"refusing {phase} of 2.0.0: rolled back by guard: MsgrouteLatencyAboveTrigger (" in out
    assert "run shadow.yml to start again" in out
    assert STATE.read_text() == before
    assert not LOCK.exists()
    assert lb_weights() == (0, 0)


def test_status_reports_the_guard_rollback_and_fails(after_partial):
    run = run_playbook("status.yml")
    assert run.returncode != 0
    out = run.flat
    assert "rolled back by guard: MsgrouteLatencyAboveTrigger (" in out
    assert "DECISION: rolled back by guard: " in out and "from partial 50% to legacy" in out


def test_a_new_shadow_acknowledges_the_guard_and_opens_partial_again(after_partial):
    with load(rate=100):
        shadow = run_playbook("shadow.yml")
        assert shadow.returncode == 0, shadow.output[-4000:]
        assert "GATE shadow 0%: Successful" in " ".join(shadow.gate_lines()), "the shadow ran again"
        acknowledged = [s for s in state()["steps"] if s.get("verdict") == "Guard"]
        assert acknowledged and acknowledged[-1]["guard"][0]["alert"] == "MsgrouteLatencyAboveTrigger"
        assert guard_record() is None, "the lb cleared its record"
        assert lb_weights() == (0, 10)
        partial = run_playbook("partial.yml", "-e", "rollout_weight=25")
        assert partial.returncode == 0, partial.output[-4000:]


@pytest.fixture(scope="module")
def killed():
    """ansible-playbook killed in the middle of a long gate; then one message class (strategic) fails on the
    new pool: the guard reverts with no controller at all."""
    fresh_start()
    token = ["-e", f"router_admin_token={ADMIN_TOKEN}"]
    with load(rate=100) as seen:
        shadow = run_playbook("shadow.yml", *token)
        assert shadow.returncode == 0, shadow.output[-4000:]
        gate = {"interval": 5, "count": 60, "window": "5s"}
        long_gate = json.dumps({"rollout_analysis": {"partial": gate}})
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
        proc = subprocess.Popen(
            [str(BIN / "ansible-playbook"), "-i", INVENTORY, "playbooks/partial.yml",
             "-e", "rollout_weight=25", "-e", long_gate, *token],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(lambda: lb_weights() == (25, 0), 300, "the partial step at 25 %")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        set_faults(ADMIN_TOKEN, error_rate_by_class={"strategic": 1.0})
        record = wait_for(guard_record, GUARD_WAIT, "a guard rollback after a class fails")
        wait_for(lambda: lb_weights() == (0, 0), 10, "weight and shadow 0 on the lb")
    set_faults(ADMIN_TOKEN, error_rate_by_class={"strategic": 0.0})
    return {"record": record, "clients": seen.summary}


def test_a_killed_playbook_leaves_the_release_guarded(killed):
    record = killed["record"]
    # Every strategic message fails on the new pool: its success share and the lb's failovers both breach.
    assert record["alert"] in {"MsgrouteSuccessBelowTrigger", "MsgrouteFailoversAboveTrigger"}, record
    assert record["weights_before"]["new_weight"] == 25
    all_legacy("after-kill")
    # The failover to legacy answered every request the failing class sent to the new pool.
    assert set(killed["clients"]["by_status"]) == {"200"}, killed["clients"]["by_status"]


def test_a_run_in_progress_stops_at_its_next_step_with_the_reason(killed):
    """After a new shadow, partial 25 → 50 runs; the guard acts during step 25's analysis (a webhook as
    Alertmanager sends it): the run stops with the guard's reason and 50 is never applied."""
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
        wait_for(lambda: lb_weights() == (25, 0), 300, "step 25")
        fire_guard("partial")
        worker.join(timeout=900)
    run = result["run"]
    assert run.returncode != 0
    out = run.flat
    assert (
        "STOPPED partial at 25%: rolled back by guard: MsgrouteLatencyAboveTrigger (81.2ms vs 65ms) at "
        in out
    )
    assert "GATE partial 50%" not in out
    written = json.loads(decision.read_text())
    assert written["verdict"] == "Guard" and written["reason"].startswith("rolled back by guard: ")
    assert state()["steps"][-1]["verdict"] == "Guard"
    assert not LOCK.exists()
    assert lb_weights() == (0, 0)
