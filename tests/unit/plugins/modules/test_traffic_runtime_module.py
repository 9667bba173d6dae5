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
