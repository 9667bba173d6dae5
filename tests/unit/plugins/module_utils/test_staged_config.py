"""Stage, validate, swap, keep the last-known-good copy, restore it; structural versus runtime changes."""

from __future__ import annotations

import sys

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils import staged_config as sc

RUNTIME = "msgroute:runtime"
PY = sys.executable


def test_a_change_only_in_runtime_lines_is_not_structural():
    before = "a\nweight 10  # msgroute:runtime\nb\n"
    after = "a\nweight 50  # msgroute:runtime\nb\n"
    assert sc.structural_change(before, after, RUNTIME) is False
    assert sc.structural_change(before, after) is True
    assert sc.structural_change(before, after.replace("b", "c"), RUNTIME) is True
    assert sc.structural_change(before, before, RUNTIME) is False


def test_apply_swaps_and_keeps_the_previous_file(tmp_path):
    dest = tmp_path / "nginx.conf"
    dest.write_text("old\n")
    plan, _output, kept = sc.apply(str(dest), "new\n", f"{PY} -c pass %s", 0o644, ".last-good", 10, RUNTIME)
    assert plan.changed and plan.structural
    assert dest.read_text() == "new\n"
    assert kept == str(dest) + ".last-good"
    assert (tmp_path / "nginx.conf.last-good").read_text() == "old\n"
    assert not list(tmp_path.glob("*.staged"))


def test_a_rejected_candidate_never_goes_live(tmp_path):
    dest = tmp_path / "nginx.conf"
    dest.write_text("old\n")
    validator = f"{PY} -c \"import sys; print('emerg: bad value', file=sys.stderr); sys.exit(1)\" %s"
    with pytest.raises(sc.ValidationError, match="emerg: bad value"):
        sc.apply(str(dest), "bad\n", validator, 0o644, ".last-good", 10)
    assert dest.read_text() == "old\n"
    assert not (tmp_path / "nginx.conf.last-good").exists()
    assert not list(tmp_path.glob("*.staged"))


def test_restore_puts_the_last_good_copy_back_and_keeps_it(tmp_path):
    dest = tmp_path / "nginx.conf"
    dest.write_text("w 10 msgroute:runtime\n")
    sc.apply(str(dest), "w 50 msgroute:runtime\n", None, 0o644, ".last-good", 10)
    plan = sc.restore(str(dest), 0o644, ".last-good", RUNTIME)
    assert plan.changed and not plan.structural
    assert dest.read_text() == "w 10 msgroute:runtime\n"
    assert (tmp_path / "nginx.conf.last-good").read_text() == "w 10 msgroute:runtime\n"


def test_restore_without_a_copy_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        sc.restore(str(tmp_path / "nginx.conf"), 0o644, ".last-good")
