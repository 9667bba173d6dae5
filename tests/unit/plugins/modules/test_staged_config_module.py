"""staged_config through AnsibleModule: structural flag, check mode, restore of the last-known-good copy."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.msgroute.rollout.plugins.modules import staged_config

RUNTIME = "msgroute:runtime"


def run_module(args: dict[str, Any], capsys) -> tuple[int, dict]:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        staged_config.main()
    return exited.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def live(tmp_path):
    dest = tmp_path / "nginx.conf"
    dest.write_text("structure\nweight 10 # msgroute:runtime\n")
    return dest


def test_a_runtime_only_change_is_applied_and_not_structural(live, capsys):
    args = {
        "dest": str(live),
        "content": "structure\nweight 50 # msgroute:runtime\n",
        "runtime_pattern": RUNTIME,
    }
    rc, result = run_module({**args, "validate": f"{sys.executable} -c pass %s"}, capsys)
    assert rc == 0 and result["changed"] and result["structural"] is False
    assert "weight 50" in live.read_text()
    assert (live.parent / "nginx.conf.last-good").read_text() == "structure\nweight 10 # msgroute:runtime\n"


def test_check_mode_shows_the_diff_and_writes_nothing(live, capsys):
    args = {"dest": str(live), "content": "other\n", "_ansible_check_mode": True, "_ansible_diff": True}
    rc, result = run_module(args, capsys)
    assert rc == 0 and result["changed"] and result["structural"]
    assert result["diff"]["after"] == "other\n"
    assert live.read_text().startswith("structure")


def test_restore_puts_the_last_good_copy_back(live, capsys):
    run_module({"dest": str(live), "content": "broken\n"}, capsys)
    rc, result = run_module({"dest": str(live), "restore": True, "runtime_pattern": RUNTIME}, capsys)
    assert rc == 0 and result["changed"] and result["structural"]
    assert live.read_text() == "structure\nweight 10 # msgroute:runtime\n"


def test_restore_without_a_copy_fails(live, capsys):
    rc, result = run_module({"dest": str(live), "restore": True}, capsys)
    assert rc == 1 and "no last-known-good copy" in result["msg"]


def test_a_bad_runtime_pattern_is_refused(live, capsys):
    rc, result = run_module({"dest": str(live), "content": "x\n", "runtime_pattern": "("}, capsys)
    assert rc == 1 and "runtime_pattern" in result["msg"]
