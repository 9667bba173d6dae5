"""The README's main job: the full local rehearsal, shadow → 25 → 50 → 75 → 100 with load running."""

from __future__ import annotations

import json

import pytest

from tests.support import RESULTS
from tests.support.rollout import DATA_DIR, fresh_start, load, run_playbook, traffic_state

EXPECTED_GATES = [
    "GATE shadow 0%",
    "GATE partial 25%",
    "GATE partial 50%",
    "GATE partial 75%",
    "GATE full 100%",
]


@pytest.fixture(scope="module")
def rehearsal():
    fresh_start()
    for stale in [RESULTS / "loadgen_summary.json", *RESULTS.glob("performance_report_*.json")]:
        stale.unlink(missing_ok=True)
    run = run_playbook("rehearsal.yml")
    assert run.returncode == 0, run.output[-5000:]
    return run


def test_every_gate_passed_in_order(rehearsal):
    lines = rehearsal.gate_lines()
    gates = [line for line in lines if "(status)" not in line]
    assert [line.split(":")[0] for line in gates] == EXPECTED_GATES
    assert all(": Successful - " in line for line in gates), gates
    # status.yml at the end measures the new pool once more, live.
    assert [line for line in lines if line.startswith("GATE full (status): Successful")]


def test_it_ends_at_full_with_legacy_decommissioned(rehearsal):
    assert traffic_state() == {"new_weight": 100, "shadow_percent": 0, "legacy_enabled": False}
    assert "HEALTHY" in rehearsal.output


def test_clients_were_served_by_both_versions_without_server_errors(rehearsal):
    summary = json.loads((RESULTS / "loadgen_summary.json").read_text())
    assert summary["responses"] > 1000
    assert set(summary["by_version"]) == {"legacy", "2.0.0"}
    assert not [status for status in summary["by_status"] if status.startswith("5")]


def test_no_client_lost_a_request_on_any_transition(rehearsal):
    # Kept-alive clients that never retry: the new pool appearing, every weight change and legacy's retirement
    # are run-time changes, none of which closes their connections (issue 11).
    summary = json.loads((RESULTS / "loadgen_summary.json").read_text())
    assert summary["retry"] is False
    assert summary["failed"] == 0, summary


def test_the_state_records_every_step_and_ends_completed(rehearsal):
    state = json.loads((DATA_DIR / "lb" / "state.json").read_text())
    assert (state["phase"], state["weight"], state["status"]) == ("full", 100, "completed")
    assert [(s["phase"], s["weight"], s["verdict"]) for s in state["steps"]] == [
        ("shadow", 0, "Successful"),
        ("partial", 25, "Successful"),
        ("partial", 50, "Successful"),
        ("partial", 75, "Successful"),
        ("full", 100, "Successful"),
    ]
    assert not (DATA_DIR / "lb" / "rollout.lock").exists()


def test_a_performance_report_per_step(rehearsal):
    names = sorted(p.name for p in RESULTS.glob("performance_report_*.json"))
    assert names == [
        "performance_report_full_100.json",
        "performance_report_partial_25.json",
        "performance_report_partial_50.json",
        "performance_report_partial_75.json",
        "performance_report_shadow_0.json",
    ]
    report = json.loads((RESULTS / "performance_report_partial_50.json").read_text())
    assert report["verdict"] == "Successful"
    assert report["measurements"] and all(m["p95_ms"] is not None for m in report["measurements"])


# Runs last: it leaves the rollout rolled back.
@pytest.fixture(scope="module")
def rollback_from_full(rehearsal):
    with load(rate=100, concurrency=32, max_seconds=600) as clients:
        run = run_playbook("rollback.yml")
    return run, clients.summary


def test_a_rollback_from_full_loses_no_request_and_legacy_answers_again(rollback_from_full):
    run, summary = rollback_from_full
    assert run.returncode == 0, run.output[-4000:]
    assert traffic_state() == {"new_weight": 0, "shadow_percent": 0, "legacy_enabled": True}
    assert summary["retry"] is False and summary["requests"] > 500, summary
    assert summary["failed"] == 0, summary
    assert summary["by_pool"].get("legacy", 0) > 0, summary
