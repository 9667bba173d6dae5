"""The rendered rules file under Prometheus' own tools: ``promtool check rules`` and ``promtool test rules``.

The rules are rendered by the collection's generator from an inventory's settings, through the same plan the
pre-flight makes (``plan_run``), for the defaults and for inventories/local and inventories/production. Every
alert of every phase gets the cases of ``cases.py`` (fires just past its threshold after its ``for``, quiet
just inside it, quiet on no series, NaN, too few requests, and with no phase in force). The recording rules
have hand-written tests beside them (``recording.test.yml``).

promtool comes from Debian's ``prometheus`` package (``make test-tools``), the same version the local
Prometheus image runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.msgroute.rollout.plugins.filter.alert_rules import render_rules
from ansible_collections.msgroute.rollout.plugins.module_utils.alert_rules import build_rules
from ansible_collections.msgroute.rollout.plugins.module_utils.plan import plan_run

from tests.promtool import cases

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PARTIAL_ALERTS = [
    "MsgrouteLatencyAboveSLA",
    "MsgrouteSuccessBelowSLA",
    "MsgrouteMemoryAboveSLA",
    "MsgrouteLatencyAboveTrigger",
    "MsgrouteSuccessBelowTrigger",
    "MsgrouteMemoryAboveTrigger",
    "MsgrouteBreakersAboveTrigger",
    "MsgrouteMemoryLeak",
    "MsgrouteNewPoolAbsent",
    "MsgrouteNewPoolStarved",
    "MsgrouteFailoversAboveTrigger",
]
INVENTORIES: dict[str, Path | dict[str, Any]] = {
    "local": ROOT / "inventories/local/group_vars/all/rollout.yml",
    "production": ROOT / "inventories/production/group_vars/all.yml",
    # Everything the others leave at its default: the SLA gating breakers, triggers switched off or moved,
    # no request floor, `for` windows that are not whole scrape intervals.
    "custom": {
        "rollout_version": "3.1.4-rc.1",
        "rollout_thresholds": {
            "shadow": {"max_memory_mb": 64},
            "partial": {"max_open_breakers": 1, "max_p95_ms": 40},
            "full": {"max_memory_mb": None},
        },
        "rollout_triggers": {
            "shadow": {"max_shadow_failure_percent": 5, "max_memory_mb": 96},
            "partial": {
                "max_open_breakers": 2,
                "max_p95_ms": 52.5,
                "min_success_rate": 97.5,
                "min_requests": 0,
            },
            "full": {"max_memory_mb": 200, "max_failover_percent": None},
        },
        "rollout_alerting": {
            "rate_window": "30s",
            "for": {"latency": "90s", "breakers": "10s", "memory": "45s", "leak": "20s"},
            "leak_lookback": "5m",
            "leak_horizon": "10m",
        },
    },
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make test-tools` (Debian package prometheus)")
    return path


def inventory_plan(name: str | None) -> tuple[str, dict[str, Any]]:
    """The inventory's version and the plan its pre-flight makes (a status run: every phase's gate)."""
    source = INVENTORIES[name] if name else {}
    settings = yaml.safe_load(source.read_text()) if isinstance(source, Path) else source
    plan = plan_run(
        "status",
        {
            "thresholds": settings.get("rollout_thresholds", {}),
            "triggers": settings.get("rollout_triggers", {}),
            "analysis": settings.get("rollout_analysis", {}),
            "alerting": settings.get("rollout_alerting", {}),
            "new_instances": 1,
            "legacy_instances": 1,
        },
    )
    return str(settings.get("rollout_version", "0.1.0")), plan


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize("inventory", list(INVENTORIES))
def test_every_alert_fires_past_its_threshold_after_its_for_and_stays_quiet_otherwise(inventory, tmp_path):
    version, plan = inventory_plan(inventory)
    (tmp_path / "rules.yml").write_text(render_rules(version, plan["gates"], plan["alerting"]))
    checked = run("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    rules = build_rules(version, plan["gates"], plan["alerting"])
    test_file, names = cases.build_test_file("rules.yml", rules, plan)
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(test_file, sort_keys=False, width=1000))
    result = run("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert result.returncode == 0, _failures(result.stdout + result.stderr, names)

    # Every alert of every phase was played in every shape that applies to it.
    alerts = {
        (r["alert"], r["labels"].get("phase")) for g in rules["groups"] for r in g["rules"] if "alert" in r
    }
    played = {tuple(n.split("/")[:2]) for n in names}
    assert {(a, None if p == "None" else p) for a, p in played} == alerts
    assert {n.split("/")[2] for n in names} >= {"past", "inside", "no_series", "nan", "legacy_only", "thin"}
    if inventory == "production":  # its SLA gates no breakers: 10 alerts in shadow, 11 in the others
        assert sorted(a for a, p in alerts if p == "partial") == sorted(PARTIAL_ALERTS)
        assert len(alerts) == 10 + 11 + 11 + 1


def _failures(output: str, names: list[str]) -> str:
    """promtool numbers failing tests from 0 in file order: name them."""
    lines = [output[-20000:]]
    for index, name in enumerate(names):
        if f"test #{index}" in output or f"[{index}]" in output:
            lines.append(f"test {index}: {name}")
    return "\n".join(lines)


def test_the_recording_rules_compute_what_their_names_say(tmp_path):
    version, plan = inventory_plan(None)  # the defaults: rate window 1m
    (tmp_path / "rules.yml").write_text(render_rules(version, plan["gates"], plan["alerting"]))
    shutil.copy(HERE / "recording.test.yml", tmp_path)
    result = run("test", "rules", "recording.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
