"""The Grafana dashboards of role monitoring: the committed JSON is what the generator builds, and every query
reads series that exist - recorded by the alert rules at the inventory's window, or exported by the router
and the lb."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from ansible_collections.msgroute.rollout.plugins.module_utils.alert_rules import recording_rules
from ansible_collections.msgroute.rollout.plugins.module_utils.triggers import resolve_alerting
from prometheus_client import REGISTRY

# Imported for its effect: it registers the router's metric families in REGISTRY.
import router_app.metrics  # noqa: F401  # pylint: disable=unused-import
from tests.support import ROOT
from tests.support.dashboards import DASHBOARDS, committed_targets, dashboard_files, substitute, targets

INVENTORY_SETTINGS = {
    "local": ROOT / "inventories/local/group_vars/all/rollout.yml",
    "production": ROOT / "inventories/production/group_vars/all.yml",
    "staging": ROOT / "inventories/staging/group_vars/all.yml",
}
# Metric families as their exporters declare them (a counter's family name has no _total).
ROUTER_FAMILIES = {family.name for family in REGISTRY.collect()}
LB_FAMILIES = {
    re.sub(r"_total$", "", name)
    for name in re.findall(r"# TYPE (\w+)", (ROOT / "roles/traffic/files/msgroute_traffic.lua").read_text())
}


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


build = _build_module()


def _rate_window(path: Path) -> str:
    settings = yaml.safe_load(path.read_text()) if path.exists() else {}
    return resolve_alerting((settings or {}).get("rollout_alerting")).rate_window


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in dashboard_files()}


def test_the_committed_json_is_what_the_generator_builds():
    built = build.build_dashboards()
    committed = {path.name: path.read_text() for path in dashboard_files()}
    assert set(committed) == set(built) == {"routing-engine-performance.json", "shadow-comparison.json"}
    for name, text in built.items():
        assert committed[name] == text, f"{name} is stale: run `make dashboards` and commit the result"


def test_every_panel_and_query_reads_the_datasource_variable():
    for name, board in _dashboards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (
                name,
                panel["title"],
            )
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], (name, panel["title"])


def test_panel_ids_are_unique_and_uids_fit_grafana():
    for name, board in _dashboards().items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        assert 0 < len(board["uid"]) <= 40, name


@pytest.mark.parametrize("inventory", sorted(INVENTORY_SETTINGS))
def test_the_window_variable_offers_each_inventorys_rate_window(inventory):
    window = _rate_window(INVENTORY_SETTINGS[inventory])
    for name, board in _dashboards().items():
        variable = next(v for v in board["templating"]["list"] if v["name"] == "window")
        assert window in variable["query"].split(","), (name, inventory, window)


@pytest.mark.parametrize("inventory", sorted(INVENTORY_SETTINGS))
def test_every_recorded_series_a_panel_reads_is_recorded_at_that_window(inventory):
    window = _rate_window(INVENTORY_SETTINGS[inventory])
    recorded = {rule["record"] for rule in recording_rules(resolve_alerting({"rate_window": window}))}
    read = {
        name
        for target in committed_targets({"window": window})
        for name in re.findall(r"\b(?:pool|lb):[a-z0-9_]+:[a-z0-9_]+", target.expr)
    }
    assert read, "no panel reads a recorded series"
    assert read <= recorded, sorted(read - recorded)


def test_every_raw_metric_a_panel_reads_is_exported():
    raw = {
        re.sub(r"_(bucket|total)$", "", name)
        for target in committed_targets({"window": "1m"})
        for name in re.findall(r"(?<![:\w])(msgroute_[a-z_]+)", target.expr)
    }
    assert raw
    assert raw <= ROUTER_FAMILIES | LB_FAMILIES, sorted(raw - ROUTER_FAMILIES - LB_FAMILIES)


def test_the_lines_follow_the_phase_settings():
    gates = {"partial": {"thresholds": {"max_p95_ms": 40}, "triggers": {"max_p95_ms": 52.5}}}
    board = json.loads(build.build_dashboards(gates)["routing-engine-performance.json"])
    p95 = next(panel for panel in board["panels"] if panel["title"] == "p95 latency")
    sla, trigger = (
        t["expr"] for t in p95["targets"] if t["legendFormat"] in (build.SLA_LEGEND, build.TRIGGER_LEGEND)
    )
    assert '(vector(0.04) and on() lb:msgroute_rollout_phase:in_force{phase=~"partial"})' in sla
    assert '(vector(0.045) and on() lb:msgroute_rollout_phase:in_force{phase=~"shadow"})' in sla
    assert '(vector(0.0525) and on() lb:msgroute_rollout_phase:in_force{phase=~"partial"})' in trigger
    assert '(vector(0.065) and on() lb:msgroute_rollout_phase:in_force{phase=~"shadow|full"})' in trigger


def test_a_switched_off_trigger_draws_no_line():
    assert build.phase_line({"shadow": None, "partial": None, "full": None}) is None
    assert build.phase_line({"shadow": None, "partial": 0.02, "full": 0.02}) == (
        '(vector(0.02) and on() lb:msgroute_rollout_phase:in_force{phase=~"partial|full"})'
    )


def test_the_shadow_dashboard_steps_are_the_shadow_phase_settings():
    gates = {"shadow": {"thresholds": {"max_p95_ms": 30}, "triggers": {"max_shadow_failure_percent": 5}}}
    board = json.loads(build.build_dashboards(gates)["shadow-comparison.json"])
    by_title = {panel["title"]: panel for panel in board["panels"]}
    p95_steps = by_title["p95 latency"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in p95_steps] == [None, 0.03, 0.065]
    failed_steps = by_title["Failed copies"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in failed_steps] == [None, 0.05]


def test_substitution_covers_grafanas_syntaxes_and_refuses_an_unknown_variable():
    assert substitute("a$window b${window} c${window:raw} d[[window]]", {"window": "5s"}) == "a5s b5s c5s d5s"
    with pytest.raises(KeyError, match=r"\$other"):
        substitute("rate(x[$other])", {"window": "5s"})


def test_targets_include_panels_inside_collapsed_rows_and_skip_hidden_ones():
    board = {
        "title": "t",
        "panels": [
            {
                "type": "row",
                "title": "r",
                "panels": [{"title": "in", "targets": [{"refId": "A", "expr": "x"}]}],
            },
            {"title": "hidden", "targets": [{"refId": "A", "expr": "y", "hide": True}]},
        ],
    }
    assert [(t.panel, t.expr) for t in targets(board, {})] == [("in", "x")]
