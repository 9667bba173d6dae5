"""partial.yml with a new router made to breach (injected latency): the gate reverts traffic to legacy.

The guard would revert these releases too, racing the gate (test_guard_always_on.py); here it is
silenced in Alertmanager for the module, as an operator silences it for maintenance, so the gate is what is
tested.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.support import RESULTS
from tests.support.monitoring import guard_silenced
from tests.support.rollout import fresh_start, load, route, run_playbook, traffic_state

FAULT = '{"router_fault_injection": {"latency_ms": 100}}'


@pytest.fixture(scope="module")
def breach():
    fresh_start()
    with guard_silenced():
        yield gate_breach()


def gate_breach():
    decision = RESULTS / "rollback_decision.json"
    decision.unlink(missing_ok=True)
    with load(rate=100) as seen:
        shadow = run_playbook("shadow.yml")
        assert shadow.returncode == 0, shadow.output[-4000:]
        run = run_playbook("partial.yml", "-e", "rollout_weight=50", "-e", FAULT)
    return run, seen.summary, decision


def test_the_play_fails_naming_metric_threshold_and_value(breach):
    run, _, _ = breach
    assert run.returncode != 0
    assert "ROLLBACK partial at 50%: traffic is back on legacy" in run.output
    assert "p95 latency" in run.output
    assert "> threshold 48 ms" in run.output


def test_traffic_is_back_on_legacy(breach):
    assert traffic_state() == {"new_weight": 0, "shadow_percent": 0, "legacy_enabled": True}
    for n in range(100):
        answer = route(f"after-breach-{n}")
        assert answer.status_code == 200
        assert answer.headers["X-Router-Version"] == "legacy"
        assert answer.headers["X-Msgroute-Pool"] == "legacy"


def test_the_decision_is_written_down(breach):
    _, _, path = breach
    decision = json.loads(path.read_text())
    assert decision["decision"] == "rollback"
    assert decision["phase"] == "partial"
    assert decision["weight"] == 50
    assert decision["verdict"] == "Failed"
    assert any("p95 latency" in reason for m in decision["measurements"] for reason in m["reasons"])


def test_clients_were_answered_throughout(breach):
    _, summary, _ = breach
    assert summary["responses"] > 500
    # The slow new routers did answer (slowly) while they had live traffic; nothing answered 5xx.
    assert set(summary["by_status"]) == {"200"}
    assert summary["by_version"].get("2.0.0", 0) > 0
    assert summary["by_version"]["legacy"] > summary["by_version"]["2.0.0"]


def test_the_new_routers_are_kept_for_forensics(breach):
    for port in (18081, 18082):
        assert requests.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200


def test_the_baseline_judge_catches_a_release_slower_than_legacy_inside_the_sla(breach):
    """+15 ms keeps p95 far under 48 ms, so only the Mann-Whitney comparison with legacy can catch it."""
    judged = json.dumps(
        {
            "router_fault_injection": {"latency_ms": 15},
            "rollout_analysis_provider": "web",
            "rollout_judge": {"partial": {"enabled": True}},
            "rollout_force": True,
        }
    )
    with load(rate=100):
        run = run_playbook("partial.yml", "-e", "rollout_weight=50", "-e", judged)
    assert run.returncode != 0
    assert "ROLLBACK partial at 50%: traffic is back on legacy" in run.output
    assert "judge" in run.output.lower()
    assert "latency" in run.output
    assert traffic_state()["new_weight"] == 0


def test_errors_on_one_message_class_only_are_caught(breach):
    """Every strategic message fails (about a fifth of the traffic); tactical ones are fine."""
    one_class = json.dumps(
        {"router_fault_injection": {"error_rate_by_class": {"strategic": 1.0}}, "rollout_force": True}
    )
    with load(rate=100) as seen:
        run = run_playbook("partial.yml", "-e", "rollout_weight=50", "-e", one_class)
    assert run.returncode != 0
    assert "ROLLBACK partial at 50%: traffic is back on legacy" in run.output
    # Either the gate sees the 503s (success rate under 99 %), or nginx's passive breaker (max_fails) has
    # already marked the failing instances down and the new pool starves below the minimum volume: both
    # are a breach, and both stop the step.
    assert ("success rate" in run.output and "< threshold 99 %" in run.output) or (
        "request volume" in run.output and "< minimum" in run.output
    )
    assert traffic_state()["new_weight"] == 0
    # nginx retried the 503s on legacy (message ids are idempotency keys), so clients saw no error at all.
    assert not [status for status in seen.summary["by_status"] if status.startswith("5")]


def test_the_judge_is_on_by_default_through_prometheus_and_catches_it_too(breach):
    """The local inventory's own provider (prometheus), nothing asked for: the partial judge is on by default
    and reads both pools' bucket increases over the step from Prometheus."""
    judged = json.dumps({"router_fault_injection": {"latency_ms": 15}, "rollout_force": True})
    with load(rate=100):
        run = run_playbook("partial.yml", "-e", "rollout_weight=50", "-e", judged)
    assert run.returncode != 0
    assert "ROLLBACK partial at 50%: traffic is back on legacy" in run.output
    assert "baseline judge Failed" in run.output
    assert "latency High" in run.output
    assert traffic_state()["new_weight"] == 0
