"""Ansible module: check a run's settings on the controller and compute its plan, before anything changes."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollout_plan
short_description: Check every setting of a rollout run and compute its plan before anything changes
version_added: "0.2.0"
description:
  - The pre-flight of every phase playbook. Checks the settings a run reads - step weights, shadow
    percent, per-phase thresholds and analysis settings, the pools' sizes, ports - and either returns the
    run's plan or fails listing every refused setting and why. It runs on the controller before the rollout
    lock is taken, so a refused run changes no container, no nginx value and no state.
  - Thresholds and analysis settings are checked by the same code the gate
    (M(msgroute.rollout.rollout_analysis)) runs, including the analysis limits that could never trigger
    (Argo Rollouts refuses them too).
  - A rollback is never refused for a threshold or step setting; it only needs a legacy instance.
author:
  - msgroute.rollout developers (@msgroute)
options:
  phase:
    description:
      - The run's phase. V(status) plans no step and changes nothing (status.yml, validate.yml); V(rollback)
        only needs a legacy instance.
    type: str
    required: true
    choices: [shadow, partial, full, rollback, status]
  weight:
    description: A single partial step (C(rollout_weight)); overrides O(steps). Whole percent 1-99.
    type: raw
  steps:
    description: The partial steps (C(rollout_steps)), rising whole percentages 1-99.
    type: raw
  shadow_percent:
    description: Percent of live requests mirrored in shadow (C(rollout_shadow_percent)), 1-100.
    type: raw
  thresholds:
    description: C(rollout_thresholds), per phase; see M(msgroute.rollout.rollout_analysis) for the fields.
    type: raw
  analysis:
    description: C(rollout_analysis), per phase (interval, count, limits, window).
    type: raw
  triggers:
    description:
      - C(rollout_triggers), per phase - the rollback level beside the promotion SLA (C(max_p95_ms),
        C(min_success_rate), C(max_memory_mb), C(max_open_breakers), C(max_failover_percent),
        C(max_shadow_failure_percent), C(min_requests)).
      - A trigger stricter than its phase's SLA (p95 below, success above, memory or breakers below) is
        refused.
    type: raw
    version_added: "0.2.0"
  alerting:
    description:
      - C(rollout_alerting) - the alert rules' C(rate_window), C(for) per alert (C(latency), C(success),
        C(breakers), C(memory), C(leak), C(absent), C(starved), C(failovers), C(shadow_failures),
        C(lb_metrics)), C(leak_lookback) and C(leak_horizon), each a Prometheus duration.
    type: raw
    version_added: "0.2.0"
  judge:
    description:
      - C(rollout_judge), per phase - the baseline judge's C(enabled) and settings (see the O(judge) option of
        M(msgroute.rollout.rollout_analysis)).
      - Unset, C(enabled) is the phase's default - V(false) for shadow, V(true) for partial (legacy at the
        same moments), V(true) for full with O(provider=prometheus) (legacy just before the bake,
        C(baseline_period=before); with V(web) legacy serves nothing to compare with, so V(false), and
        V(true) is refused).
    type: raw
    version_added: "0.2.0"
  provider:
    description: C(rollout_analysis_provider), which the judge's defaults depend on.
    type: str
    choices: [web, prometheus]
    default: web
    version_added: "0.2.0"
  new_instances:
    description: Number of new router instances the inventory gives.
    type: raw
  legacy_instances:
    description: Number of legacy instances the inventory gives.
    type: raw
  ports:
    description: Port settings to check (name to value), each a whole number 1-65535.
    type: dict
    default: {}
  lb_hosts:
    description:
      - Number of lb hosts in the inventory. With any, O(guard_token) is required (not for a rollback).
    type: int
    default: 0
    version_added: "0.2.0"
  guard_token:
    description:
      - C(rollout_guard_token), the bearer token of the guard in every lb host's nginx. Refused when there are
        lb hosts and it is missing, shorter than 16 characters, or holds whitespace or control characters.
        Never shown, not even in the refusal.
    type: raw
  legacy_window:
    description:
      - C(rollout_legacy_window), seconds full.yml keeps legacy in nginx (weight 0, guarded) after the bake
        before it is taken out; a whole number from 0 to 604800.
    type: raw
    default: 0
    version_added: "0.2.0"
  status_watch:
    description:
      - C(rollout_status_watch), seconds between two looks of status.yml's watch; V(0) is one look, no watch.
        A whole number from 0 to 3600.
    type: raw
    default: 0
    version_added: "0.2.0"
  status_watch_for:
    description:
      - C(rollout_status_watch_for), seconds status.yml watches at most; a whole number from 1 to 86400, at
        least O(status_watch), and at most 1441 looks (O(status_watch_for) / O(status_watch) + 1).
    type: raw
    default: 300
    version_added: "0.2.0"
  monitoring_hosts:
    description: Number of hosts in the inventory's C(monitoring) group.
    type: int
    default: 0
    version_added: "0.2.0"
  monitoring_user:
    description: C(rollout_monitoring_user), the basic-auth user of Prometheus and Alertmanager; no C(:).
    type: str
    version_added: "0.2.0"
  monitoring_password:
    description:
      - C(rollout_monitoring_password). Refused when empty while O(monitoring_hosts) is above 0 - role
        C(monitoring) serves Prometheus and Alertmanager only with basic auth.
      - Never logged, never in the plan.
    type: str
    version_added: "0.2.0"
extends_documentation_fragment:
  - msgroute.rollout.attributes
attributes:
  check_mode:
    support: full
    details: Read-only; it runs in check mode too.
  diff_mode:
    support: none
    details: Changes nothing.
"""

EXAMPLES = r"""
- name: Check the settings and plan a partial run
  msgroute.rollout.rollout_plan:
    phase: partial
    weight: "{{ rollout_weight }}"
    steps: "{{ rollout_steps }}"
    thresholds: "{{ rollout_thresholds }}"
    analysis: "{{ rollout_analysis }}"
    new_instances: 2
    legacy_instances: 1
    lb_hosts: "{{ groups['lb'] | length }}"
    guard_token: "{{ rollout_guard_token }}"
  register: preflight
"""

RETURN = r"""
plan:
  description:
    - The run's plan - its steps, per phase the gate's resolved thresholds, the resolved rollback triggers,
      the analysis settings given and the resolved baseline judge, and the resolved alert timing
      (C(alerting)).
  returned: success
  type: dict
  sample:
    phase: partial
    steps: [{phase: partial, weight: 25, shadow_percent: 0}, {phase: partial, weight: 50, shadow_percent: 0}]
    gates:
      partial:
        thresholds: {max_p95_ms: 48.0, min_success_rate: 99.0, max_memory_mb: 128.0, min_requests: 20,
                     no_data: inconclusive, max_open_breakers: null}
        triggers: {max_p95_ms: 65.0, min_success_rate: 98.0, max_memory_mb: 128.0, max_open_breakers: 0,
                   max_failover_percent: 2.0, max_shadow_failure_percent: 2.0, min_requests: 20}
        analysis: {interval: 5.0, count: 3, window: 5s}
        judge: {enabled: true, alpha: 0.05, pass_score: 95.0, marginal_score: 75.0, latency_tolerance: 0.05,
                error_rate_tolerance: 0.1, min_samples: 100, baseline_period: during}
    alerting:
      rate_window: 1m
      for: {latency: 5m, success: 3m, breakers: 0s, memory: 5m, leak: 10m, absent: 1m, starved: 5m,
            failovers: 3m, shadow_failures: 3m, lb_metrics: 2m}
      leak_lookback: 30m
      leak_horizon: 1h
    legacy_window: 600
    watch: {every_s: 5, for_s: 300, looks: 61}
problems:
  description: Every refused setting, one line each.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.msgroute.rollout.plugins.module_utils.plan import RUN_PHASES, PlanError, plan_run

SETTINGS = (
    "weight",
    "steps",
    "shadow_percent",
    "thresholds",
    "analysis",
    "triggers",
    "alerting",
    "judge",
    "provider",
    "new_instances",
    "legacy_instances",
    "ports",
    "lb_hosts",
    "guard_token",
    "monitoring_hosts",
    "monitoring_user",
    "monitoring_password",
    "legacy_window",
    "status_watch",
    "status_watch_for",
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "phase": {"type": "str", "required": True, "choices": list(RUN_PHASES)},
            "weight": {"type": "raw"},
            "steps": {"type": "raw"},
            "shadow_percent": {"type": "raw"},
            "thresholds": {"type": "raw"},
            "analysis": {"type": "raw"},
            "triggers": {"type": "raw"},
            "alerting": {"type": "raw"},
            "judge": {"type": "raw"},
            "provider": {"type": "str", "choices": ["web", "prometheus"], "default": "web"},
            "new_instances": {"type": "raw"},
            "legacy_instances": {"type": "raw"},
            "ports": {"type": "dict", "default": {}},
            "lb_hosts": {"type": "int", "default": 0},
            "guard_token": {"type": "raw", "no_log": True},
            "monitoring_hosts": {"type": "int", "default": 0},
            "monitoring_user": {"type": "str"},
            "monitoring_password": {"type": "str", "no_log": True},
            "legacy_window": {"type": "raw", "default": 0},
            "status_watch": {"type": "raw", "default": 0},
            "status_watch_for": {"type": "raw", "default": 300},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        plan = plan_run(p["phase"], {name: p[name] for name in SETTINGS})
    except PlanError as exc:
        module.fail_json(msg=str(exc), problems=exc.problems)
    module.exit_json(changed=False, plan=plan)


if __name__ == "__main__":
    main()
