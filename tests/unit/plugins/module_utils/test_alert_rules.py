"""The rules file's shape: names, levels, labels and the settings each alert compares with.

What the rules *do* on real series is tested by Prometheus itself in tests/promtool.
"""

from __future__ import annotations

import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.msgroute.rollout.plugins.filter.alert_rules import FilterModule, render_rules
from ansible_collections.msgroute.rollout.plugins.module_utils.alert_rules import (
    MIB,
    build_rules,
    humanize_1024,
    humanize_duration,
    humanize_percentage,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.plan import plan_run

RECORD_NAME = re.compile(r"^(pool|lb):[a-z_]+:[a-z0-9_]+$")


def rules_of(rules: dict) -> list[dict]:
    return [rule for group in rules["groups"] for rule in group["rules"]]


def alerts(rules: dict, phase: str | None = None) -> dict[str, dict]:
    return {
        r["alert"]: r
        for r in rules_of(rules)
        if "alert" in r and (phase is None or r["labels"].get("phase") == phase)
    }


def first_line(rule: dict) -> str:
    return rule["expr"].splitlines()[0]


@pytest.fixture
def default_rules() -> dict:
    return build_rules("2.0.0", {}, {})


def test_recording_rules_are_named_level_metric_operations_with_their_window(default_rules):
    records = [r["record"] for r in rules_of(default_rules) if "record" in r]
    assert all(RECORD_NAME.match(name) for name in records), records
    assert "pool:msgroute_request_duration_seconds:p95_rate1m" in records
    assert "pool:msgroute_requests:success_ratio_rate1m" in records
    assert {
        "lb:msgroute_lb_failovers:ratio_rate1m",
        "lb:msgroute_lb_mirror_requests:failed_ratio_rate1m",
    } <= set(records)
    five = [r["record"] for r in rules_of(build_rules("2.0.0", {}, {"rate_window": "5s"})) if "record" in r]
    assert "pool:msgroute_request_duration_seconds:p95_rate5s" in five
    assert not any("rate1m" in name for name in five)


def test_recording_rules_cover_both_pools_and_the_lb(default_rules):
    exprs = {r["record"]: r["expr"] for r in rules_of(default_rules) if "record" in r}
    # by (pool): new and legacy alike, from the router job; the lb's own series from its job.
    assert "sum by (pool, le)" in exprs["pool:msgroute_request_duration_seconds:p95_rate1m"]
    assert 'job="msgroute-router"' in exprs["pool:msgroute_requests:rate1m"]
    assert 'job="msgroute-lb"' in exprs["lb:msgroute_lb_failovers:rate1m"]
    assert 'result!="dropped"' in exprs["lb:msgroute_lb_mirror_requests:rate1m"]


def test_two_levels_per_phase_hold_below_rollback(default_rules):
    for phase, sla_ms in (("shadow", "0.045"), ("partial", "0.048"), ("full", "0.05")):
        by_name = alerts(default_rules, phase)
        hold, rollback = by_name["MsgrouteLatencyAboveSLA"], by_name["MsgrouteLatencyAboveTrigger"]
        assert first_line(hold).endswith(f"> {sla_ms}")
        assert first_line(rollback).endswith("> 0.065")
        assert hold["labels"] == {
            "severity": "warning",
            "rollout_action": "hold",
            "phase": phase,
            "version": "2.0.0",
            "pool": "new",
        }
        assert rollback["labels"]["rollout_action"] == "rollback"
        assert rollback["labels"]["severity"] == "critical"
    partial = alerts(default_rules, "partial")
    assert first_line(partial["MsgrouteSuccessBelowSLA"]).endswith("< 0.99")
    assert first_line(partial["MsgrouteSuccessBelowTrigger"]).endswith("< 0.98")
    assert first_line(partial["MsgrouteMemoryAboveTrigger"]).endswith(f"> {128 * MIB}")
    assert first_line(partial["MsgrouteBreakersAboveTrigger"]).endswith("> 0")


def test_the_seed_s_windows_by_default(default_rules):
    partial = alerts(default_rules, "partial")
    assert partial["MsgrouteLatencyAboveTrigger"]["for"] == "5m"
    assert partial["MsgrouteSuccessBelowTrigger"]["for"] == "3m"
    assert partial["MsgrouteBreakersAboveTrigger"]["for"] == "0s"  # immediate
    quick = alerts(build_rules("2.0.0", {}, {"for": {"latency": "5s"}}), "partial")
    assert quick["MsgrouteLatencyAboveTrigger"]["for"] == "5s"
    assert quick["MsgrouteSuccessBelowTrigger"]["for"] == "3m"


def test_every_alert_names_its_phase_version_and_action_and_is_gated_on_the_lb_phase(default_rules):
    for group in default_rules["groups"]:
        for rule in (r for r in group["rules"] if "alert" in r):
            labels = rule["labels"]
            assert labels["version"] == "2.0.0"
            assert labels["rollout_action"] in ("hold", "rollback")
            assert {"summary", "description"} <= set(rule["annotations"])
            assert "Action: " + labels["rollout_action"] in rule["annotations"]["description"]
            if "phase" in labels:
                assert group["name"] == f"msgroute-rollout-{labels['phase']}"
                assert rule["expr"].endswith(
                    f'and on() lb:msgroute_rollout_phase:in_force{{phase="{labels["phase"]}"}}'
                )
            else:
                assert rule["alert"] == "MsgrouteLbMetricsMissing"


def test_threshold_alerts_say_value_and_threshold(default_rules):
    partial = alerts(default_rules, "partial")
    latency = partial["MsgrouteLatencyAboveTrigger"]["annotations"]
    assert latency["threshold"] == "65ms"
    assert latency["value"] == "{{ $value | humanizeDuration }}"
    assert "rollout_triggers.partial.max_p95_ms (65 ms)" in latency["description"]
    assert partial["MsgrouteSuccessBelowSLA"]["annotations"]["threshold"] == "99%"
    assert partial["MsgrouteMemoryLeak"]["annotations"]["threshold"] == "128MiB"


def test_alerts_per_phase(default_rules):
    shadow, partial = set(alerts(default_rules, "shadow")), set(alerts(default_rules, "partial"))
    assert "MsgrouteShadowFailuresAboveTrigger" in shadow
    assert not {"MsgrouteNewPoolStarved", "MsgrouteFailoversAboveTrigger"} & shadow
    assert {"MsgrouteNewPoolStarved", "MsgrouteFailoversAboveTrigger", "MsgrouteNewPoolAbsent"} <= partial
    assert partial == set(alerts(default_rules, "full"))
    # The SLA gates no breakers by default, so there is no hold level for them.
    assert "MsgrouteBreakersAboveSLA" not in partial
    assert alerts(default_rules, "partial")["MsgrouteNewPoolStarved"]["labels"]["rollout_action"] == "hold"
    assert alerts(default_rules, "partial")["MsgrouteNewPoolAbsent"]["labels"]["rollout_action"] == "rollback"


def test_settings_move_and_switch_off_alerts():
    rules = build_rules(
        "2.0.0",
        {
            "partial": {
                "thresholds": {"max_open_breakers": 1},
                "triggers": {"max_p95_ms": 80, "max_memory_mb": None, "max_failover_percent": None},
            }
        },
        {"leak_lookback": "10m", "leak_horizon": "30m"},
    )
    partial = alerts(rules, "partial")
    assert first_line(partial["MsgrouteLatencyAboveTrigger"]).endswith("> 0.08")
    assert first_line(partial["MsgrouteBreakersAboveSLA"]).endswith("> 1")
    assert not {"MsgrouteMemoryAboveTrigger", "MsgrouteMemoryLeak", "MsgrouteFailoversAboveTrigger"} & set(
        partial
    )
    full = alerts(rules, "full")
    assert "[30m], 3600)" not in full["MsgrouteMemoryLeak"]["expr"]
    assert "[10m], 1800)) > 134217728" in full["MsgrouteMemoryLeak"]["expr"]


def test_the_plan_renders_the_same_rules_as_the_settings():
    plan = plan_run(
        "status",
        {
            "triggers": {"full": {"max_p95_ms": 70}},
            "alerting": {"rate_window": "5s"},
            "new_instances": 1,
            "legacy_instances": 1,
        },
    )
    from_plan = build_rules("2.0.0", plan["gates"], plan["alerting"])
    from_settings = build_rules("2.0.0", {"full": {"triggers": {"max_p95_ms": 70}}}, {"rate_window": "5s"})
    assert from_plan == from_settings


def test_render_is_the_yaml_prometheus_loads():
    text = render_rules("2.0.0", {}, {})
    assert text.startswith("# Generated by msgroute.rollout")
    assert yaml.safe_load(text) == build_rules("2.0.0", {}, {})
    assert "expr: |-" in text  # multi-line expressions stay readable


@pytest.mark.parametrize(
    ("version", "alerting"),
    [("", {}), ("2.0.0", {"rate_window": "soon"}), ("2.0.0", {"for": {"latency": "5 min"}})],
)
def test_bad_input_is_refused(version, alerting):
    with pytest.raises(ValueError):
        build_rules(version, {}, alerting)


def test_numbers_read_as_prometheus_prints_them():
    assert humanize_duration(0.065) == "65ms"
    assert humanize_duration(0.04824) == "48.24ms"
    assert humanize_duration(1.5) == "1.5s"
    assert humanize_percentage(0.9913) == "99.13%"
    assert humanize_percentage(0.5) == "50%"
    assert humanize_1024(128 * MIB) == "128Mi"
    assert humanize_1024(1.5 * 1024 * MIB) == "1.5Gi"


def test_the_filter_uses_the_plan_or_checks_the_raw_settings_like_the_pre_flight():
    alert_rules = FilterModule().filters()["alert_rules"]
    plan = plan_run("status", {"new_instances": 1, "legacy_instances": 1})
    assert alert_rules(plan, "2.0.0") == render_rules("2.0.0", plan["gates"], plan["alerting"])
    assert alert_rules({}, "2.0.0") == render_rules("2.0.0", {}, {})
    with pytest.raises(AnsibleFilterError, match=r"rollout_triggers\.partial\.max_p95_ms: 30 ms is stricter"):
        alert_rules({}, "2.0.0", triggers={"partial": {"max_p95_ms": 30}})
    with pytest.raises(AnsibleFilterError, match="rate_window"):
        alert_rules({}, "2.0.0", alerting={"rate_window": "x"})
