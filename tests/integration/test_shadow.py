"""shadow.yml on the local Docker engine: mirrored traffic reaches the new routers, clients see legacy."""

from __future__ import annotations

import pytest

from tests.support.rollout import (
    NEW_ROUTER_PORTS,
    fresh_start,
    load,
    route,
    router_metrics,
    run_playbook,
    traffic_state,
)


@pytest.fixture(scope="module")
def shadow():
    fresh_start()
    with load(rate=100) as seen:
        run = run_playbook("shadow.yml")
    assert run.returncode == 0, run.output[-4000:]
    return run, seen.summary


def test_gate_passes_and_prints_its_verdict(shadow):
    run, _ = shadow
    verdicts = run.gate_lines()
    assert len(verdicts) == 1, verdicts
    assert "GATE shadow 0%: Successful" in verdicts[0]


def test_clients_got_only_legacy_answers(shadow):
    _, summary = shadow
    assert summary["responses"] > 500
    assert set(summary["by_version"]) == {"legacy"}
    assert set(summary["by_pool"]) == {"legacy"}
    assert set(summary["by_status"]) == {"200"}


def test_mirrored_traffic_reached_the_new_routers_and_nothing_else_did(shadow):
    for port in NEW_ROUTER_PORTS:
        metrics = router_metrics(port)
        assert metrics.value("msgroute_requests_total", mirrored="true") > 0, port
        assert metrics.value("msgroute_requests_total", mirrored="false") == 0, port


def test_traffic_settings_recorded(shadow):
    assert traffic_state() == {"new_weight": 0, "shadow_percent": 10, "legacy_enabled": True}


def test_answers_through_nginx_stay_legacy_after_the_play(shadow):
    for n in range(50):
        answer = route(f"after-shadow-{n}")
        assert answer.status_code == 200
        assert answer.headers["X-Router-Version"] == "legacy"
        assert answer.headers["X-Msgroute-Pool"] == "legacy"


def test_a_second_run_changes_nothing(shadow):
    with load(rate=100):
        again = run_playbook("shadow.yml")
    assert again.returncode == 0, again.output[-4000:]
    assert again.recap["localhost"]["changed"] == 0, again.output[-4000:]
