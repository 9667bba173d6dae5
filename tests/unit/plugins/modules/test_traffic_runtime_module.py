"""traffic_runtime through AnsibleModule: check mode, diff, refusals; `docker exec` is faked."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.msgroute.rollout.plugins.module_utils import traffic_runtime as rt
from ansible_collections.msgroute.rollout.plugins.modules import traffic_runtime


@pytest.fixture
def nginx(monkeypatch):
    state = {"new_weight": 10, "shadow_percent": 0, "has_new": True, "has_legacy": True}
    calls: list[str] = []

    def fake_run(command, **kwargs):
        request = command[-1]
        calls.append(request.split(" ", 1)[0])
        if request.startswith("PUT "):
            query = request.split("?", 1)[1].split(" ", 1)[0]
            state.update({k: int(v) for k, v in (pair.split("=") for pair in query.split("&"))})
        body = json.dumps(state)
        return subprocess.CompletedProcess(command, 0, f"HTTP/1.1 200 OK\r\n\r\n{body}", "")

    monkeypatch.setattr(rt.subprocess, "run", fake_run)
    return state, calls


def run_module(args: dict[str, Any], capsys) -> tuple[int, dict]:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        traffic_runtime.main()
    return exited.value.code, json.loads(capsys.readouterr().out)


def test_changes_and_shows_the_diff(nginx, capsys):
    state, calls = nginx
    rc, result = run_module(
        {"container": "lb", "new_weight": 40, "shadow_percent": 5, "_ansible_diff": True}, capsys
    )
    assert rc == 0 and result["changed"]
    assert result["diff"]["before"] == "new_weight: 10\nshadow_percent: 0\n"
    assert result["diff"]["after"] == "new_weight: 40\nshadow_percent: 5\n"
    assert state["new_weight"] == 40
    assert calls == ["GET", "PUT"]


def test_check_mode_changes_nothing(nginx, capsys):
    state, calls = nginx
    args = {"container": "lb", "new_weight": 40, "shadow_percent": 0, "_ansible_check_mode": True}
    rc, result = run_module(args, capsys)
    assert rc == 0 and result["changed"]
    assert state["new_weight"] == 10
    assert calls == ["GET"]


def test_same_values_are_not_a_change(nginx, capsys):
    rc, result = run_module({"container": "lb", "new_weight": 10, "shadow_percent": 0}, capsys)
    assert rc == 0 and not result["changed"]


def test_query_reads_only(nginx, capsys):
    calls = nginx[1]
    rc, result = run_module({"container": "lb", "state": "query"}, capsys)
    assert rc == 0 and not result["changed"] and result["before"]["new_weight"] == 10
    assert calls == ["GET"]


def test_out_of_range_is_refused_before_any_call(nginx, capsys):
    calls = nginx[1]
    rc, result = run_module({"container": "lb", "new_weight": 140, "shadow_percent": 0}, capsys)
    assert rc == 1 and "new_weight must be a whole number from 0 to 100" in result["msg"]
    assert calls == []


RECORD = {
    "active": True,
    "version": "2.0.0",
    "alert": "MsgrouteLatencyAboveTrigger",
    "value": "81.2ms",
    "threshold": "65ms",
    "at": 1764660000.5,
    "weights_before": {"new_weight": 50, "shadow_percent": 0},
}


@pytest.fixture
def guarded(monkeypatch):
    """nginx after a guard rollback: 0/0, the record in force, PUT above 0 refused with 409 until DELETE."""
    state = {"new_weight": 0, "shadow_percent": 0, "version": "2.0.0", "guard": dict(RECORD),
             "guard_in_force": True}  # fmt: skip
    calls: list[str] = []

    def fake_run(command, **kwargs):
        request = command[-1]
        calls.append(request.split(" ", 1)[0])
        status, body = 200, dict(state)
        if request.startswith("DELETE "):
            body = {**state, "guard": None, "guard_in_force": False, "cleared": state["guard"]}
            state.update(guard=None, guard_in_force=False)
        elif request.startswith("PUT ") and state["guard_in_force"]:
            status, body = 409, {"error": "version 2.0.0 was rolled back by the guard"}
        return subprocess.CompletedProcess(command, 0, f"HTTP/1.1 {status} X\r\n\r\n{json.dumps(body)}", "")

    monkeypatch.setattr(rt.subprocess, "run", fake_run)
    return state, calls


def test_query_returns_the_version_and_the_guard_record(guarded, capsys):
    rc, result = run_module({"container": "lb", "state": "query"}, capsys)
    assert rc == 0 and not result["changed"]
    assert result["version"] == "2.0.0"
    assert result["guard"] == RECORD


def test_clear_guard_clears_and_shows_the_record_in_the_diff(guarded, capsys):
    state, calls = guarded
    args = {"container": "lb", "state": "clear_guard", "reason": "shadow of 2.0.1", "_ansible_diff": True}
    rc, result = run_module(args, capsys)
    assert rc == 0 and result["changed"]
    assert calls == ["GET", "DELETE"]
    assert result["guard"] is None and result["cleared"] == RECORD
    assert result["diff"]["before"].startswith("guard: active, version 2.0.0 rolled back by MsgrouteLatency")
    assert result["diff"]["after"] == "guard: none\n"
    assert state["guard"] is None


def test_clear_guard_in_check_mode_changes_nothing(guarded, capsys):
    state, calls = guarded
    rc, result = run_module({"container": "lb", "state": "clear_guard", "_ansible_check_mode": True}, capsys)
    assert rc == 0 and result["changed"] and result["guard"] is None
    assert calls == ["GET"]
    assert state["guard"] == RECORD


def test_clear_guard_without_a_record_is_no_change(guarded, capsys):
    state = guarded[0]
    state.update(guard=None, guard_in_force=False)
    rc, result = run_module({"container": "lb", "state": "clear_guard"}, capsys)
    assert rc == 0 and not result["changed"] and result["cleared"] is None


def test_a_weight_while_the_guard_record_stands_fails_with_nginx_reason(guarded, capsys):
    rc, result = run_module({"container": "lb", "new_weight": 25, "shadow_percent": 0}, capsys)
    assert rc == 1
    assert "runtime API refused PUT: 409 version 2.0.0 was rolled back by the guard" in result["msg"]
