"""Filter that exposes plugins/module_utils/alert_rules.py to role monitoring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.msgroute.rollout.plugins.module_utils.alert_rules import (
    LB_JOB,
    ROUTER_JOB,
    render_rules,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.analysis import PHASES, resolve_thresholds
from ansible_collections.msgroute.rollout.plugins.module_utils.triggers import (
    resolve_triggers,
    stricter_than_sla,
)


def _raw_gates(thresholds: Any, triggers: Any) -> dict[str, dict[str, Any]]:
    """Without a plan (the role run on its own), the same resolution and refusal as the pre-flight."""
    thresholds, triggers = dict(thresholds or {}), dict(triggers or {})
    gates = {p: {"thresholds": thresholds.get(p), "triggers": triggers.get(p)} for p in PHASES}
    problems = []
    for phase, gate in gates.items():
        sla = resolve_thresholds(phase, gate["thresholds"])
        problems.extend(stricter_than_sla(phase, sla, resolve_triggers(phase, gate["triggers"])))
    if problems:
        raise ValueError("; ".join(problems))
    return gates


def _alert_rules(
    run: Any,
    version: str,
    thresholds: Any = None,
    triggers: Any = None,
    alerting: Any = None,
    router_job: str = ROUTER_JOB,
    lb_job: str = LB_JOB,
) -> str:
    try:
        if isinstance(run, Mapping) and run.get("gates") and run.get("alerting") is not None:
            gates, timing = run["gates"], run["alerting"]
        else:
            gates, timing = _raw_gates(thresholds, triggers), alerting
        return render_rules(str(version), gates, timing, router_job=router_job, lb_job=lb_job)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"alert rules: {exc}") from exc


class FilterModule:
    """msgroute.rollout.alert_rules: the Prometheus rules file of the rollout."""

    def filters(self) -> dict[str, Any]:
        return {"alert_rules": _alert_rules}
