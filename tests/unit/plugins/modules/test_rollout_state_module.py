"""rollout_state through AnsibleModule: the guard's record honoured by check and put into the history by
record_guard, in a real state directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.msgroute.rollout.plugins.modules import rollout_state

from tests.unit.plugins.module_utils.guard_samples import REASON, VERSION, guard


def run_module(args: dict[str, Any], capsys: pytest.CaptureFixture) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        rollout_state.main()
    result = json.loads(capsys.readouterr().out)
    assert exited.value.code == (1 if result.get("failed") else 0)
    return result


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    steps = [
        {"phase": "shadow", "weight": 0, "verdict": "Successful", "version": VERSION},
        {"phase": "partial", "weight": 50, "verdict": "Successful", "version": VERSION},
    ]
    state = {"version": VERSION, "phase": "partial", "weight": 50, "status": "progressing", "steps": steps}
    (tmp_path / "state.json").write_text(json.dumps(state))
    return tmp_path


def check(state_dir: Path, phase: str, guard_value: Any, weights: list[int]) -> dict:
    return {
        "state_dir": str(state_dir),
        "action": "check",
        "version": VERSION,
        "phase": phase,
        "weights": weights,
        "guard": guard_value,
    }


def test_check_refuses_partial_with_the_guard_reason(state_dir, capsys):
    result = run_module(check(state_dir, "partial", [guard(), None], [75]), capsys)
    assert result["failed"]
    assert result["msg"] == f"refusing partial of {VERSION}: {REASON}; run shadow.yml to start again"


def test_check_lets_a_new_shadow_start_over(state_dir, capsys):
    result = run_module(check(state_dir, "shadow", guard(), [0]), capsys)
    assert not result.get("failed") and result["remaining"] == [0]


def test_check_refuses_a_guard_value_that_is_not_records(state_dir, capsys):
    result = run_module(check(state_dir, "shadow", "rolled back", [0]), capsys)
    assert result["failed"] and "guard must be a record" in result["msg"]


def record_guard(state_dir: Path, guard_value: Any, **extra: Any) -> dict:
    return {
        "state_dir": str(state_dir),
        "action": "record_guard",
        "version": VERSION,
        "guard": guard_value,
        **extra,
    }


def test_record_guard_writes_the_rollback_once_and_says_it_stands(state_dir, capsys):
    first = run_module(record_guard(state_dir, [guard()]), capsys)
    assert first["changed"] and first["active"] and first["msg"] == REASON and first["verdict"] == "Guard"
    saved = json.loads((state_dir / "state.json").read_text())
    assert saved["steps"][-1]["verdict"] == "Guard" and saved["steps"][-1]["message"] == REASON
    assert (saved["phase"], saved["weight"], saved["status"]) == ("rollback", 0, "aborted")
    again = run_module(record_guard(state_dir, [guard()]), capsys)
    assert not again["changed"] and again["active"] and again["recorded"] == []
    assert json.loads((state_dir / "state.json").read_text()) == saved


def test_record_guard_in_check_mode_writes_nothing(state_dir, capsys):
    before = (state_dir / "state.json").read_text()
    result = run_module(record_guard(state_dir, guard(), _ansible_check_mode=True), capsys)
    assert result["changed"] and (state_dir / "state.json").read_text() == before


def test_record_guard_without_a_standing_record_changes_nothing(state_dir, capsys):
    before = (state_dir / "state.json").read_text()
    result = run_module(record_guard(state_dir, [guard(active=False), None]), capsys)
    assert not result["changed"] and not result["active"] and "msg" not in result
    assert (state_dir / "state.json").read_text() == before
