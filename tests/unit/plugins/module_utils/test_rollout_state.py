"""The rules of the rollout state: phase order, what a re-run redoes, history, and the run lock."""

from __future__ import annotations

import json

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils import guard_record as gr
from ansible_collections.msgroute.rollout.plugins.module_utils import rollout_state as rs

from tests.unit.plugins.module_utils.guard_samples import AT as GUARD_AT
from tests.unit.plugins.module_utils.guard_samples import REASON as GUARD_REASON
from tests.unit.plugins.module_utils.guard_samples import guard


def step(phase: str, weight: int = 0, verdict: str = "Successful", version: str = "2.0.0") -> dict:
    return {"phase": phase, "weight": weight, "verdict": verdict, "version": version}


def history(*steps: dict) -> dict:
    state = rs.empty_state()
    for item in steps:
        state = rs.record(state, item)
    return state


def test_shadow_may_always_start_on_a_new_version():
    assert rs.check_order(rs.empty_state(), "2.0.0", "shadow", force=False) is None


def test_partial_before_a_passed_shadow_is_refused_with_the_way_forward():
    with pytest.raises(
        rs.StateError, match=r"refusing partial of 2.0.0: its shadow phase has not passed.*shadow.yml"
    ):
        rs.check_order(rs.empty_state(), "2.0.0", "partial", force=False)


def test_force_turns_the_refusal_into_a_warning():
    warning = rs.check_order(rs.empty_state(), "2.0.0", "full", force=True)
    assert warning is not None and "partial phase has not passed" in warning


def test_a_failed_shadow_does_not_open_partial():
    state = history(step("shadow", verdict="Failed"))
    with pytest.raises(rs.StateError):
        rs.check_order(state, "2.0.0", "partial", force=False)


def test_a_shadow_of_another_version_does_not_count():
    state = history(step("shadow", version="1.9.0"))
    with pytest.raises(rs.StateError):
        rs.check_order(state, "2.0.0", "partial", force=False)


def test_full_needs_partial_and_partial_needs_shadow():
    state = history(step("shadow"), step("partial", 25))
    assert rs.check_order(state, "2.0.0", "partial", force=False) is None
    assert rs.check_order(state, "2.0.0", "full", force=False) is None


def test_going_back_to_shadow_while_live_is_refused():
    state = history(step("shadow"), step("partial", 50))
    with pytest.raises(rs.StateError, match="already past it"):
        rs.check_order(state, "2.0.0", "shadow", force=False)


def test_a_rollback_resets_what_has_passed():
    state = history(step("shadow"), step("partial", 25), step("rollback"))
    assert rs.passed(state, "2.0.0", "shadow") == []
    with pytest.raises(rs.StateError, match="since the last rollback"):
        rs.check_order(state, "2.0.0", "partial", force=False)
    assert rs.check_order(state, "2.0.0", "shadow", force=False) is None


def test_a_rerun_only_does_the_steps_left():
    state = history(step("shadow"), step("partial", 25), step("partial", 50))
    assert rs.remaining(state, "2.0.0", "partial", [25, 50, 75]) == [75]
    assert rs.remaining(state, "2.0.0", "shadow", [0]) == []
    assert rs.remaining(state, "3.0.0", "partial", [25, 50, 75]) == [25, 50, 75]


def test_record_updates_phase_weight_and_status():
    state = history(step("shadow"), step("partial", 50))
    assert (state["phase"], state["weight"], state["status"]) == ("partial", 50, "progressing")
    assert len(state["steps"]) == 2
    done = rs.record(state, step("full", 100))
    assert (done["phase"], done["weight"], done["status"]) == ("full", 100, "completed")
    failed = rs.record(state, step("partial", 75, verdict="Failed"))
    assert (failed["weight"], failed["status"]) == (0, "aborted")
    paused = rs.record(state, dict(step("partial", 75), status="paused"))
    assert paused["status"] == "paused"
    assert state["steps"] == history(step("shadow"), step("partial", 50))["steps"], "record must not mutate"


def test_save_and_load_round_trip(tmp_path):
    path = str(tmp_path / "state.json")
    assert rs.load(path) == rs.empty_state()
    state = history(step("shadow"))
    rs.save(path, state)
    assert rs.load(path) == state
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".state.")]


def test_a_corrupt_state_file_is_reported_not_overwritten(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(rs.StateError, match="not valid JSON"):
        rs.load(str(path))
    assert path.read_text() == "{not json"


def lock(run_id: str, since: float = 1000.0, ttl: float = 60.0) -> rs.Lock:
    return rs.Lock(owner="sre", run_id=run_id, playbook="partial.yml", since=since, expires=since + ttl)


def test_a_free_lock_is_taken():
    taken, warning = rs.acquire(None, lock("a"), now=1000.0, break_lock=False)
    assert taken.run_id == "a" and warning is None


def test_a_live_lock_of_another_run_refuses_with_its_holder():
    with pytest.raises(
        rs.StateError, match=r"another rollout holds the lock: sre runs partial.yml \(run a\)"
    ):
        rs.acquire(lock("a"), lock("b", since=1010.0), now=1010.0, break_lock=False)


def test_the_same_run_may_refresh_its_lock():
    taken, warning = rs.acquire(lock("a"), lock("a", since=1030.0), now=1030.0, break_lock=False)
    assert taken.since == 1030.0 and warning is None


def test_an_expired_lock_is_stale_and_taken_over_with_a_warning():
    taken, warning = rs.acquire(lock("a", ttl=10), lock("b", since=2000.0), now=2000.0, break_lock=False)
    assert taken.run_id == "b"
    assert warning is not None and "stale lock" in warning


def test_breaking_a_live_lock_says_why():
    warning = rs.acquire(lock("a"), lock("b"), now=1001.0, break_lock=True, reason="its process is gone")[1]
    assert warning is not None and warning.endswith("its process is gone")


def test_an_unreadable_lock_counts_as_stale(tmp_path):
    path = tmp_path / "rollout.lock"
    path.write_text("garbage")
    found = rs.read_lock(str(path))
    assert found is not None and found.expires == 0.0
    taken, warning = rs.acquire(found, lock("b"), now=1000.0, break_lock=False)
    assert taken.run_id == "b" and "stale" in (warning or "")


def test_lock_round_trip_keeps_the_controller_process(tmp_path):
    path = str(tmp_path / "rollout.lock")
    held = rs.Lock("sre", "a", "shadow.yml", 1.0, 2.0, controller="ctl", pid=4242)
    rs.save(path, held.to_dict())
    assert rs.read_lock(path) == held
    assert json.loads((tmp_path / "rollout.lock").read_text())["pid"] == 4242


# A rollback the lb's guard recorded (guard_samples: partial of 2.0.0 at 50 %, rolled back on latency).


@pytest.mark.parametrize("phase", ["partial", "full"])
def test_a_standing_guard_rollback_refuses_partial_and_full_with_its_reason(phase):
    state = history(step("shadow"), step("partial", 25), step("partial", 50))
    with pytest.raises(rs.StateError) as refused:
        rs.check_order(state, "2.0.0", phase, force=False, guard=[guard()])
    assert str(refused.value) == f"refusing {phase} of 2.0.0: {GUARD_REASON}; run shadow.yml to start again"


def test_force_does_not_override_the_guard():
    state = history(step("shadow"), step("partial", 50))
    with pytest.raises(rs.StateError, match="rollout_force does not override the guard"):
        rs.check_order(state, "2.0.0", "full", force=True, guard=guard())


def test_after_a_guard_rollback_a_new_shadow_starts_again_from_its_first_step():
    state = history(step("shadow", 0), step("partial", 25), step("partial", 50))
    assert rs.check_order(state, "2.0.0", "shadow", force=False, guard=[guard(), None]) is None
    assert rs.remaining(state, "2.0.0", "shadow", [0], guard=[guard()]) == [0]
    assert rs.remaining(state, "2.0.0", "shadow", [0]) == [], "without the guard the passed shadow stands"


def test_a_cleared_record_or_one_of_another_version_changes_nothing():
    state = history(step("shadow"), step("partial", 25))
    for record in (guard(active=False), guard(version="1.9.0")):
        assert rs.check_order(state, "2.0.0", "full", force=False, guard=record) is None
        assert rs.remaining(state, "2.0.0", "partial", [25, 50], guard=record) == [50]


def test_acknowledging_records_the_guard_rollback_in_the_history():
    state = history(step("shadow"), step("partial", 50))
    acknowledged, added = rs.acknowledge(
        state, [guard(), guard(lb="lb2", at=GUARD_AT + 2)], "2025-12-02T08:00:00+00:00"
    )
    assert added == acknowledged["steps"][-1:]
    assert added[0] == {
        "phase": "rollback",
        "weight": 0,
        "version": "2.0.0",
        "from_phase": "partial",
        "from_weight": 50,
        "verdict": "Guard",
        "message": GUARD_REASON,
        "guard": [gr.summary(guard()), gr.summary(guard(lb="lb2", at=GUARD_AT + 2))],
        "at": "2025-12-02T08:00:00+00:00",
    }
    assert (acknowledged["phase"], acknowledged["weight"], acknowledged["status"]) == (
        "rollback",
        0,
        "aborted",
    )
    assert rs.passed(acknowledged, "2.0.0", "shadow") == []
    assert len(state["steps"]) == 2, "acknowledge must not mutate"


def test_a_guard_rollback_is_recorded_once():
    once = rs.acknowledge(history(step("shadow")), guard())[0]
    twice, added = rs.acknowledge(once, guard())
    assert added == [] and twice == once
    # The record keeps standing until the lb clears it: the order still refuses, the shadow still restarts.
    with pytest.raises(rs.StateError, match="rolled back by guard"):
        rs.check_order(twice, "2.0.0", "partial", force=False, guard=guard())


def test_after_the_acknowledging_shadow_passed_partial_may_start():
    state = rs.acknowledge(history(step("shadow"), step("partial", 50)), guard())[0]
    state = rs.record(state, step("shadow"))
    assert rs.check_order(state, "2.0.0", "partial", force=False, guard=None) is None
    assert rs.remaining(state, "2.0.0", "partial", [25, 50]) == [25, 50]


def test_nothing_standing_acknowledges_nothing():
    state = history(step("shadow"))
    assert rs.acknowledge(state, [guard(active=False), None]) == (state, [])
