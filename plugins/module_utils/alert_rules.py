"""The Prometheus rules file of a rollout, built from the same per-phase settings the gates use.

Recording rules (``level:metric:operations``) summarise both router pools (p95 from the histograms, success
share, request rate, memory, open breakers, targets up) and the lb (its answers per pool, failovers to
legacy, failed shadow copies, the weight and shadow percent in force). Alerting rules compare the new pool
with the two levels of each phase (``triggers.py``): the promotion SLA (``rollout_thresholds``; a breach
*holds* the release, ``rollout_action: hold``, severity warning) and the rollback trigger
(``rollout_triggers``; a breach *reverts* it, ``rollout_action: rollback``, severity critical).

The phase in force is read from the lb, not from the run that rendered the file. Every phase's group is
rendered at once and each alert is ANDed with ``lb:msgroute_rollout_phase:in_force{phase=...}``, recorded
from the lb's own gauges (weight 0 with shadow copies: shadow; weight 1-99: partial; 100: full). Rendering
one phase per run would leave the rules of the last run in force when the run dies half-way, when a step
changes the weight without re-rendering, or when the guard sets the weight to 0 at run time - exactly the
moments the rules must be right. Gated on the lb, the rules follow every weight change within one
evaluation, nothing fires once traffic is back on legacy (weight and shadow 0: no phase in force), and no
playbook has to run for them to be right. The version, unlike the phase, changes only when a playbook
deploys new routers, and that run renders the file; it is a static label the guard compares with the
version in force. Without the lb's metrics no phase is in force, so ``MsgrouteLbMetricsMissing`` says the
rules are blind.

No data never reverts a release by itself: a p95 or share over no requests (no series, NaN) keeps the
threshold alerts quiet, and the new pool's absence or starvation has alerts of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import (
    PHASES,
    Thresholds,
    resolve_thresholds,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.triggers import (
    AlertTiming,
    Triggers,
    resolve_alerting,
    resolve_triggers,
)

ROUTER_JOB = "msgroute-router"
LB_JOB = "msgroute-lb"
MIB = 1024 * 1024
# msgroute_breaker_state: 0 closed, 1 half-open, 2 open (router_app/metrics.py).
BREAKER_OPEN = 2
# A new pool answering less than this share of what its weight gives it is starved.
STARVED_SHARE = 0.5
# Shadow copies that reached the new pool and failed: 5xx answers and copies that got no answer. Copies the lb
# shed ("dropped") never reached it and count neither way.
SHADOW_FAILED = "5xx|error"

HOLD = "hold"
ROLLBACK = "rollback"
SEVERITY = {HOLD: "warning", ROLLBACK: "critical"}
ACTION_TEXT = {
    HOLD: "hold - the release is not promoted while this fires; it stays at its step.",
    ROLLBACK: "rollback - the new pool's weight and shadow copies go to 0, traffic back on legacy.",
}
LEVEL_TEXT = {HOLD: "promotion SLA", ROLLBACK: "rollback trigger"}
GROUP_PREFIX = "msgroute-rollout"


# ----------------------------------------------------------------------------- numbers as Go prints them


def _g4(value: float) -> str:
    return f"{value:.4g}"


def humanize_duration(seconds: float) -> str:
    """Prometheus' ``humanizeDuration`` for the sub-second values a p95 takes (and plain seconds above)."""
    if seconds == 0 or seconds >= 1:
        return f"{_g4(seconds)}s"
    prefix, value = "", seconds
    for p in ("m", "u", "n"):
        if value >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_g4(value)}{prefix}s"


def humanize_percentage(ratio: float) -> str:
    """Prometheus' ``humanizePercentage``: a ratio shown as a percentage."""
    return f"{_g4(ratio * 100)}%"


def humanize_1024(value: float) -> str:
    """Prometheus' ``humanize1024`` (memory)."""
    if abs(value) <= 1:
        return _g4(value)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi"):
        if abs(value) < 1024:
            break
        prefix, value = p, value / 1024
    return f"{_g4(value)}{prefix}"


def _num(value: float) -> str:
    """A threshold in PromQL: exact, without a trailing .0."""
    if not math.isfinite(value):
        raise ValueError(f"threshold {value!r} is not finite")
    return format(value, ".15g")


# ------------------------------------------------------------------------------------------- names


@dataclass(frozen=True)
class Names:
    """The recorded series' names (``level:metric:operations``) for one rate window (``rate1m``)."""

    window: str

    @property
    def rate(self) -> str:
        return f"rate{self.window}"

    @property
    def p95(self) -> str:
        return f"pool:msgroute_request_duration_seconds:p95_{self.rate}"

    @property
    def requests(self) -> str:
        return f"pool:msgroute_requests:{self.rate}"

    @property
    def success(self) -> str:
        return f"pool:msgroute_requests:success_ratio_{self.rate}"

    memory = "pool:process_resident_memory_bytes:max"
    breakers = "pool:msgroute_breaker_state:count_open"
    up = "pool:up:sum"

    @property
    def lb_requests_by_pool(self) -> str:
        return f"pool:msgroute_lb_requests:{self.rate}"

    @property
    def lb_requests(self) -> str:
        return f"lb:msgroute_lb_requests:{self.rate}"

    @property
    def lb_new_share(self) -> str:
        return f"lb:msgroute_lb_requests:new_ratio_{self.rate}"

    @property
    def new_bound(self) -> str:
        return f"lb:msgroute_lb_new_bound_requests:{self.rate}"

    @property
    def failovers(self) -> str:
        return f"lb:msgroute_lb_failovers:{self.rate}"

    @property
    def failover_ratio(self) -> str:
        return f"lb:msgroute_lb_failovers:ratio_{self.rate}"

    @property
    def shadow_copies(self) -> str:
        return f"lb:msgroute_lb_mirror_requests:{self.rate}"

    @property
    def shadow_failed(self) -> str:
        return f"lb:msgroute_lb_mirror_requests:failed_ratio_{self.rate}"

    weight = "lb:msgroute_lb_new_weight:max"
    shadow_percent = "lb:msgroute_lb_shadow_percent:max"
    phase = "lb:msgroute_rollout_phase:in_force"


# ------------------------------------------------------------------------------------ recording rules


def recording_rules(timing: AlertTiming, router_job: str = ROUTER_JOB, lb_job: str = LB_JOB) -> list[dict]:
    """The series of both pools and the lb that the alerts (and dashboards, gates) read, in order."""
    n = Names(timing.rate_window)
    w = timing.rate_window
    router = f'job="{router_job}"'
    lb = f'job="{lb_job}"'
    requests = f"msgroute_requests_total{{{router}}}"
    ok = f'msgroute_requests_total{{{router},status_class!~"5xx"}}'

    def rule(record: str, expr: str, **labels: str) -> dict[str, Any]:
        return {"record": record, "expr": expr, **({"labels": labels} if labels else {})}

    def phase_rule(phase: str, condition: str) -> dict[str, Any]:
        return rule(n.phase, f"vector(1) and on() ({condition})", phase=phase)

    return [
        # The router pools (targets labelled pool=new|legacy by role monitoring).
        rule(
            n.p95,
            "histogram_quantile(0.95, sum by (pool, le) "
            f"(rate(msgroute_request_duration_seconds_bucket{{{router}}}[{w}])))",
        ),
        rule(n.requests, f"sum by (pool) (rate({requests}[{w}]))"),
        # Every request failed: the non-5xx series may be absent, and 0 % must not read as "no data".
        rule(
            n.success,
            f"(sum by (pool) (rate({ok}[{w}])) or sum by (pool) (rate({requests}[{w}])) * 0)\n"
            f"/ sum by (pool) (rate({requests}[{w}]))",
        ),
        rule(n.memory, f"max by (pool) (process_resident_memory_bytes{{{router}}})"),
        rule(n.breakers, f"sum by (pool) (msgroute_breaker_state{{{router}}} == bool {BREAKER_OPEN})"),
        rule(n.up, f"sum by (pool) (up{{{router}}})"),
        # The lb: who answered, the split's misses, the shadow copies, the weights in force.
        rule(n.lb_requests_by_pool, f"sum by (pool) (rate(msgroute_lb_requests_total{{{lb}}}[{w}]))"),
        rule(n.lb_requests, f"sum(rate(msgroute_lb_requests_total{{{lb}}}[{w}]))"),
        rule(
            n.lb_new_share,
            f'(sum(rate(msgroute_lb_requests_total{{{lb},pool="new"}}[{w}])) or vector(0))\n'
            f"/ sum(rate(msgroute_lb_requests_total{{{lb}}}[{w}]))",
        ),
        rule(n.failovers, f"sum(rate(msgroute_lb_failovers_total{{{lb}}}[{w}]))"),
        # What the split sent to the new pool: what it answered plus what legacy answered for it.
        rule(
            n.new_bound,
            f"{n.failovers} + on() "
            f'(sum(rate(msgroute_lb_requests_total{{{lb},pool="new"}}[{w}])) or vector(0))',
        ),
        rule(n.failover_ratio, f"{n.failovers} / on() {n.new_bound}"),
        rule(n.shadow_copies, f'sum(rate(msgroute_lb_mirror_requests_total{{{lb},result!="dropped"}}[{w}]))'),
        rule(
            n.shadow_failed,
            f'(sum(rate(msgroute_lb_mirror_requests_total{{{lb},result=~"{SHADOW_FAILED}"}}[{w}]))'
            f" or vector(0))\n/ {n.shadow_copies}",
        ),
        # Several lbs switch together; the highest value is what reaches the new pool somewhere.
        rule(n.weight, f"max(msgroute_lb_new_weight{{{lb}}})"),
        rule(n.shadow_percent, f"max(msgroute_lb_shadow_percent{{{lb}}})"),
        phase_rule("shadow", f"{n.weight} == 0 and on() {n.shadow_percent} > 0"),
        phase_rule("partial", f"{n.weight} > 0 < 100"),
        phase_rule("full", f"{n.weight} >= 100"),
    ]


# ------------------------------------------------------------------------------------- alerting rules


@dataclass(frozen=True)
class AlertContext:
    phase: str
    version: str
    timing: AlertTiming
    names: Names
    triggers: Triggers
    router_job: str

    @property
    def in_force(self) -> str:
        return f'{self.names.phase}{{phase="{self.phase}"}}'

    def window_seconds(self) -> float:
        return self.timing.seconds("rate_window")

    def volume(self, rate_series: str, on: str = "on(pool)") -> str:
        """Enough requests in the window to judge a p95 or a share (the trigger's ``min_requests``)."""
        return f"and {on} {rate_series} * {_num(self.window_seconds())} >= {self.triggers.min_requests}"


def _alert(
    ctx: AlertContext,
    name: str,
    action: str,
    for_key: str,
    condition: str,
    summary: str,
    description: str,
    *,
    value: str | None = None,
    threshold: str | None = None,
    pool: bool = True,
) -> dict[str, Any]:
    labels = {
        "severity": SEVERITY[action],
        "rollout_action": action,
        "phase": ctx.phase,
        "version": ctx.version,
    }
    if pool:
        labels["pool"] = "new"
    annotations = {
        "summary": f"{summary} ({ctx.phase}, version {ctx.version})",
        "description": f"{description} Action: {ACTION_TEXT[action]}",
    }
    if value is not None:
        annotations["value"] = value
    if threshold is not None:
        annotations["threshold"] = threshold
    return {
        "alert": name,
        "expr": f"{condition}\nand on() {ctx.in_force}",
        "for": ctx.timing.for_[for_key],
        "labels": labels,
        "annotations": annotations,
    }


def _level_alerts(ctx: AlertContext, action: str, limits: Thresholds | Triggers) -> list[dict[str, Any]]:
    """Latency, success, memory and breakers at one level (SLA: hold, trigger: rollback)."""
    n, t = ctx.names, ctx.timing
    setting = "rollout_thresholds" if action == HOLD else "rollout_triggers"
    suffix = "AboveSLA" if action == HOLD else "AboveTrigger"
    level = LEVEL_TEXT[action]
    where = f"{setting}.{ctx.phase}"
    new_requests = f'{n.requests}{{pool="new"}}'
    alerts = []
    if limits.max_p95_ms is not None:
        limit = limits.max_p95_ms / 1000
        shown = humanize_duration(limit)
        alerts.append(
            _alert(
                ctx,
                f"MsgrouteLatency{suffix}",
                action,
                "latency",
                f'{n.p95}{{pool="new"}} > {_num(limit)}\n{ctx.volume(new_requests)}',
                f"New pool p95 latency {{{{ $value | humanizeDuration }}}} > {level} {shown} for "
                f"{t.for_['latency']}",
                f"The new pool's p95 over {t.rate_window} has been above {where}.max_p95_ms "
                f"({_num(limits.max_p95_ms)} ms) for {t.for_['latency']}.",
                value="{{ $value | humanizeDuration }}",
                threshold=shown,
            )
        )
    if limits.min_success_rate is not None:
        limit = limits.min_success_rate / 100
        shown = humanize_percentage(limit)
        suffix_below = suffix.replace("Above", "Below")
        alerts.append(
            _alert(
                ctx,
                f"MsgrouteSuccess{suffix_below}",
                action,
                "success",
                f'{n.success}{{pool="new"}} < {_num(limit)}\n{ctx.volume(new_requests)}',
                f"New pool success rate {{{{ $value | humanizePercentage }}}} < {level} {shown} for "
                f"{t.for_['success']}",
                f"The share of the new pool's answers that are not 5xx over {t.rate_window} has been below "
                f"{where}.min_success_rate ({_num(limits.min_success_rate)} %) for {t.for_['success']}.",
                value="{{ $value | humanizePercentage }}",
                threshold=shown,
            )
        )
    if limits.max_memory_mb is not None:
        limit = limits.max_memory_mb * MIB
        shown = f"{humanize_1024(limit)}B"
        alerts.append(
            _alert(
                ctx,
                f"MsgrouteMemory{suffix}",
                action,
                "memory",
                f'{n.memory}{{pool="new"}} > {_num(limit)}',
                f"New pool memory {{{{ $value | humanize1024 }}}}B > {level} {shown} for {t.for_['memory']}",
                f"The largest resident memory of a new-pool instance has been above {where}.max_memory_mb "
                f"({_num(limits.max_memory_mb)} MB) for {t.for_['memory']}.",
                value="{{ $value | humanize1024 }}B",
                threshold=shown,
            )
        )
    if limits.max_open_breakers is not None:
        alerts.append(
            _alert(
                ctx,
                f"MsgrouteBreakers{suffix}",
                action,
                "breakers",
                f'{n.breakers}{{pool="new"}} > {limits.max_open_breakers}',
                f"{{{{ $value }}}} circuit breakers open in the new pool > {level} "
                f"{limits.max_open_breakers}",
                f"More new-pool circuit breakers are open than {where}.max_open_breakers "
                f"({limits.max_open_breakers}) allows.",
                value="{{ $value }}",
                threshold=str(limits.max_open_breakers),
            )
        )
    return alerts


def _leak_alert(ctx: AlertContext) -> dict[str, Any]:
    t, limit_mb = ctx.timing, ctx.triggers.max_memory_mb
    limit = limit_mb * MIB
    shown = f"{humanize_1024(limit)}B"
    horizon = _num(t.seconds("leak_horizon"))
    return _alert(
        ctx,
        "MsgrouteMemoryLeak",
        ROLLBACK,
        "leak",
        f"max by (pool) (predict_linear(process_resident_memory_bytes"
        f'{{job="{ctx.router_job}",pool="new"}}[{t.leak_lookback}], {horizon})) > {_num(limit)}',
        f"New pool memory predicted at {{{{ $value | humanize1024 }}}}B in {t.leak_horizon} > rollback "
        f"trigger {shown}",
        f"The trend of a new-pool instance's resident memory over {t.leak_lookback} crosses "
        f"rollout_triggers.{ctx.phase}.max_memory_mb ({_num(limit_mb)} MB) within {t.leak_horizon}: a leak.",
        value="{{ $value | humanize1024 }}B",
        threshold=shown,
    )


def _absent_alert(ctx: AlertContext) -> dict[str, Any]:
    return _alert(
        ctx,
        "MsgrouteNewPoolAbsent",
        ROLLBACK,
        "absent",
        f'({ctx.names.up}{{pool="new"}} or on() vector(0)) < 1',
        "No new-pool router is up while the new pool has traffic",
        f"Prometheus scrapes no new-pool instance of job {ctx.router_job} (none up, or none configured) "
        f"while the lb gives the new pool weight or shadow copies.",
        value="{{ $value }}",
        threshold="1",
    )


def _starved_alert(ctx: AlertContext) -> dict[str, Any]:
    n = ctx.names
    shown = humanize_percentage(STARVED_SHARE)
    return _alert(
        ctx,
        "MsgrouteNewPoolStarved",
        HOLD,
        "starved",
        f"{n.lb_new_share} / on() ({n.weight} / 100) < {_num(STARVED_SHARE)}\n"
        f"{ctx.volume(n.lb_requests, on='on()')}",
        f"New pool answers {{{{ $value | humanizePercentage }}}} of the share its weight gives it "
        f"(< {shown})",
        "The lb gives the new pool weight, but the new pool answered less than half of that share of live "
        "requests over the rate window: its results say little, and something keeps traffic from it "
        "(see MsgrouteFailoversAboveTrigger).",
        value="{{ $value | humanizePercentage }}",
        threshold=shown,
    )


def _failover_alert(ctx: AlertContext) -> dict[str, Any]:
    n, percent = ctx.names, ctx.triggers.max_failover_percent
    shown = humanize_percentage(percent / 100)
    return _alert(
        ctx,
        "MsgrouteFailoversAboveTrigger",
        ROLLBACK,
        "failovers",
        f"{n.failover_ratio} > {_num(percent / 100)}\n{ctx.volume(n.new_bound, on='on()')}",
        f"Legacy answered {{{{ $value | humanizePercentage }}}} of the requests sent to the new pool "
        f"> rollback trigger {shown} for {ctx.timing.for_['failovers']}",
        f"The lb failed over to legacy for more than rollout_triggers.{ctx.phase}.max_failover_percent "
        f"({_num(percent)} %) of the requests its split sent to the new pool.",
        value="{{ $value | humanizePercentage }}",
        threshold=shown,
        pool=True,
    )


def _shadow_alert(ctx: AlertContext) -> dict[str, Any]:
    n, percent = ctx.names, ctx.triggers.max_shadow_failure_percent
    shown = humanize_percentage(percent / 100)
    return _alert(
        ctx,
        "MsgrouteShadowFailuresAboveTrigger",
        ROLLBACK,
        "shadow_failures",
        f"{n.shadow_failed} > {_num(percent / 100)}\n{ctx.volume(n.shadow_copies, on='on()')}",
        f"{{{{ $value | humanizePercentage }}}} of the shadow copies failed > rollback trigger {shown} for "
        f"{ctx.timing.for_['shadow_failures']}",
        f"More than rollout_triggers.{ctx.phase}.max_shadow_failure_percent ({_num(percent)} %) of the "
        "copies the lb sent to the new pool got a 5xx or no answer.",
        value="{{ $value | humanizePercentage }}",
        threshold=shown,
    )


def phase_alerts(ctx: AlertContext, sla: Thresholds) -> list[dict[str, Any]]:
    """One phase's alerts: both levels, the leak, and the new pool's absence, starvation, failovers."""
    alerts = _level_alerts(ctx, HOLD, sla) + _level_alerts(ctx, ROLLBACK, ctx.triggers)
    if ctx.triggers.max_memory_mb is not None:
        alerts.append(_leak_alert(ctx))
    alerts.append(_absent_alert(ctx))
    if ctx.phase == "shadow":
        if ctx.triggers.max_shadow_failure_percent is not None:
            alerts.append(_shadow_alert(ctx))
    else:
        alerts.append(_starved_alert(ctx))
        if ctx.triggers.max_failover_percent is not None:
            alerts.append(_failover_alert(ctx))
    return alerts


def lb_alerts(version: str, timing: AlertTiming, lb_job: str = LB_JOB) -> list[dict[str, Any]]:
    """The rules' own blind spot: without the lb's metrics no phase is in force and nothing can fire."""
    return [
        {
            "alert": "MsgrouteLbMetricsMissing",
            "expr": f'up{{job="{lb_job}"}} == 0 or absent(up{{job="{lb_job}"}})',
            "for": timing.for_["lb_metrics"],
            "labels": {"severity": SEVERITY[HOLD], "rollout_action": HOLD, "version": version},
            "annotations": {
                "summary": f"The lb's metrics are not scraped (version {version})",
                "description": f"Job {lb_job} has a target down or none at all: the rules cannot tell the "
                "phase in force, so no rollout alert can fire. Action: " + ACTION_TEXT[HOLD],
            },
        }
    ]


def build_rules(
    version: str,
    gates: Mapping[str, Mapping[str, Any]],
    alerting: Mapping[str, Any] | None = None,
    *,
    router_job: str = ROUTER_JOB,
    lb_job: str = LB_JOB,
) -> dict[str, Any]:
    """The rules file as a dict: ``gates`` per phase holds ``thresholds`` and ``triggers`` (the plan's
    ``gates``, or overrides: the same resolution as the pre-flight); ``alerting`` is ``rollout_alerting``."""
    if not str(version).strip():
        raise ValueError("version: the rollout version may not be empty")
    timing = resolve_alerting(alerting)
    names = Names(timing.rate_window)
    groups: list[dict[str, Any]] = [
        {"name": f"{GROUP_PREFIX}-recording", "rules": recording_rules(timing, router_job, lb_job)},
        {"name": f"{GROUP_PREFIX}-lb", "rules": lb_alerts(str(version), timing, lb_job)},
    ]
    for phase in PHASES:
        gate = gates.get(phase) or {}
        sla = resolve_thresholds(phase, gate.get("thresholds"))
        ctx = AlertContext(
            phase=phase,
            version=str(version),
            timing=timing,
            names=names,
            triggers=resolve_triggers(phase, gate.get("triggers")),
            router_job=router_job,
        )
        groups.append({"name": f"{GROUP_PREFIX}-{phase}", "rules": phase_alerts(ctx, sla)})
    return {"groups": groups}
