"""Every panel query of the committed Grafana dashboards, run against the rollout's real Prometheus.

No Grafana server can be installed here, so this asks Prometheus exactly what each panel would ask it: the
PromQL of every target of roles/monitoring/files/dashboards/*.json with the dashboard variables substituted
(``window``: inventories/local's ``rollout_alerting.rate_window``), as an instant query while real traffic
runs through the real lb. Shadow comparison is queried in the shadow phase (weight 0, copies on), routing
engine performance at partial 50 % - each dashboard in the phase it is about. A query passes when it
returns at least one series and every value is a number (NaN: a ratio over no requests).
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.dashboards import Target, committed_targets
from tests.support.monitoring import prometheus_query
from tests.support.rollout import fresh_start, load, run_playbook

LOCAL_SETTINGS = ROOT / "inventories/local/group_vars/all/rollout.yml"
VARIABLES = {
    "window": yaml.safe_load(LOCAL_SETTINGS.read_text())["rollout_alerting"]["rate_window"],
    "datasource": "prometheus",
}
TARGETS = committed_targets(VARIABLES)
PHASE_OF_DASHBOARD = {
    "msgroute - shadow comparison": "shadow",
    "msgroute - routing engine performance": "partial",
}
# Long enough for a few rate windows of 1 s scrapes and rule evaluations after a play ends.
SETTLE_S = 30.0


def instant(expr: str) -> list[dict[str, Any]]:
    """An instant query, signed in as role monitoring's web config asks (inventories/local's password)."""
    return prometheus_query(expr, timeout=10)


def has_data(result: list[dict[str, Any]]) -> bool:
    return bool(result) and all(math.isfinite(float(series["value"][1])) for series in result)


def query_until_data(targets: list[Target]) -> dict[Target, list[dict[str, Any]]]:
    """Each query's last answer, polled until every one has data or SETTLE_S has passed."""
    results: dict[Target, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + SETTLE_S
    pending = list(targets)
    while pending:
        for target in pending:
            results[target] = instant(target.expr)
        pending = [target for target in pending if not has_data(results[target])]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    return results


@pytest.fixture(scope="module")
def answers() -> dict[Target, list[dict[str, Any]]]:
    fresh_start()
    by_phase = {
        phase: [t for t in TARGETS if PHASE_OF_DASHBOARD[t.dashboard] == phase]
        for phase in ("shadow", "partial")
    }
    results: dict[Target, list[dict[str, Any]]] = {}
    with load(rate=100):
        shadow = run_playbook("shadow.yml")
        assert shadow.returncode == 0, shadow.output[-4000:]
        results.update(query_until_data(by_phase["shadow"]))
        partial = run_playbook("partial.yml", "-e", "rollout_weight=50")
        assert partial.returncode == 0, partial.output[-4000:]
        results.update(query_until_data(by_phase["partial"]))
    return results


def test_every_dashboard_is_covered():
    assert {t.dashboard for t in TARGETS} == set(PHASE_OF_DASHBOARD)
    assert len(TARGETS) >= 30


@pytest.mark.parametrize("target", TARGETS, ids=[t.where for t in TARGETS])
def test_the_panel_query_returns_data_during_the_rollout(answers, target):
    result = answers[target]
    assert has_data(result), f"{target.where}: {target.expr}\nanswered {result}"


def test_the_phase_lines_show_the_phase_in_force(answers):
    phase = next(t for t in TARGETS if t.panel == "Phase in force")
    assert [series["metric"]["phase"] for series in answers[phase]] == ["partial"]
    p95_sla = next(
        t
        for t in TARGETS
        if t.panel == "p95 latency" and t.dashboard.endswith("performance") and t.ref == "B"
    )
    assert [float(series["value"][1]) for series in answers[p95_sla]] == [0.048]  # partial's promotion SLA


def test_both_pools_have_their_series_where_a_panel_is_per_pool(answers):
    per_pool = [t for t in TARGETS if t.expr.startswith("pool:") and "{" not in t.expr]
    assert per_pool
    for target in per_pool:
        assert {series["metric"].get("pool") for series in answers[target]} >= {"new", "legacy"}, target.where
