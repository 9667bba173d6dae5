"""Bad input stops a play before anything changes."""

from __future__ import annotations

import pytest

from tests.support.rollout import DATA_DIR, run_playbook


@pytest.fixture(scope="module")
def live_config():
    path = DATA_DIR / "lb" / "nginx.conf"
    if not path.exists():
        prepared = run_playbook("prepare.yml")
        assert prepared.returncode == 0, prepared.output[-3000:]
    return path


@pytest.mark.parametrize("weight", ["120", "0", "100", "-5", "abc"])
def test_partial_refuses_a_weight_it_cannot_take(live_config, weight):
    before = live_config.read_text()
    run = run_playbook("partial.yml", "-e", f"rollout_weight={weight}")
    assert run.returncode != 0
    assert "Partial steps must be whole percentages from 1 to 99" in run.output
    assert live_config.read_text() == before


def test_destroy_needs_confirmation(live_config):
    run = run_playbook("destroy.yml")
    assert run.returncode != 0
    assert "destroy_confirm=true" in run.output
    assert live_config.exists()
