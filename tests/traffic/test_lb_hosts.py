"""Several lb hosts switch together; when one cannot, every one goes back to what it served before.

lb2's nginx is frozen (docker pause: the host is up, its nginx does not answer). The role gets through
validation on both hosts, switches lb1, fails to switch lb2, and puts lb1 back: previous nginx.conf, previous
runtime values, nothing recorded. A client of lb1 sees no error throughout.
"""

from __future__ import annotations

import pytest

from tests.support.traffic_world import LB1, LB2, LBS, applied, apply, docker


@pytest.fixture(scope="module")
def frozen_lb2(world):
    applied(weight=20, shadow=0)
    before = {lb.host: (lb.conf.read_text(), lb.runtime(), lb.recorded()) for lb in LBS}
    docker("pause", LB2.container)
    try:
        with LB1.load(8, rate=100) as running:
            run = apply(weight=60, shadow=10)
    finally:
        docker("unpause", LB2.container)
    return run, before, running.tally


def test_the_play_fails_naming_the_lb_that_could_not_switch(frozen_lb2):
    run, _, _ = frozen_lb2
    assert run.returncode != 0
    assert "t4-lb2: the traffic change failed, this lb host serves what it served before" in run.output
    assert "is paused" in run.output
    assert "t4-lb1: the traffic change failed, this lb host serves what it served before" in run.output
    assert "lb host(s) t4-lb2 failed before reaching 'switched'" in run.output


def test_lb1_switched_then_went_back(frozen_lb2):
    run, before, _ = frozen_lb2
    # lb1 did switch (its runtime step changed) before the barrier sent it back.
    assert "changed: [t4-lb1]" in run.output.split("Switch the traffic at run time", 1)[1].split("TASK", 1)[0]
    state = LB1.runtime()
    assert (state["new_weight"], state["shadow_percent"]) == (20, 0)
    assert state["generation"] > before["t4-lb1"][1]["generation"]


def test_every_lb_serves_and_records_what_it_did_before(frozen_lb2):
    _, before, _ = frozen_lb2
    for lb in LBS:
        conf, runtime, recorded = before[lb.host]
        assert lb.conf.read_text() == conf
        state = lb.runtime()
        assert (state["new_weight"], state["shadow_percent"]) == (
            runtime["new_weight"],
            runtime["shadow_percent"],
        )
        assert lb.recorded() == recorded
        assert lb.health() == 200


def test_clients_of_the_healthy_lb_saw_no_error(frozen_lb2):
    _, _, tally = frozen_lb2
    assert tally.requests > 100
    assert tally.failed == 0, tally.snapshot()
