"""The rollout's two Grafana dashboards, built with grafana-foundation-sdk (Grafana's own builder library).

``make dashboards`` runs this file and writes ``routing-engine-performance.json`` and
``shadow-comparison.json`` beside it; role monitoring (``tasks_from: dashboards``) posts those files to a
Grafana. The JSON is never edited by hand: ``tests/unit/roles/test_dashboards.py`` fails when a committed file
differs from what this builds.

The panels read the recording rules of ``plugins/module_utils/alert_rules.py`` (``Names``) where one exists
and the raw router and lb metrics otherwise (p99, queue depth, the shadow copies by result). Two dashboard
variables: ``datasource`` (any Prometheus) and ``window``, the rate window the rules were rendered with
(``rollout_alerting.rate_window``: 1m in production, 5s in inventories/local), because the recorded series
carry their window in their name.

Thresholds come from the same settings the gates and alerts use (``resolve_thresholds``,
``resolve_triggers``; the collection's defaults unless ``build_dashboards`` is given overrides). On the
performance dashboard the phase changes under the panel, so each level is a PromQL line that follows the
phase in force (``lb:msgroute_rollout_phase:in_force``), the way the alerts are gated; the shadow dashboard
shows one phase and uses Grafana's threshold steps.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

HERE = Path(__file__).resolve().parent
# The checkout as ansible_collections.msgroute.rollout, through the collections/ link `make venv` makes.
sys.path.insert(0, str(HERE.parents[3] / "collections"))

from ansible_collections.msgroute.rollout.plugins.module_utils.alert_rules import (
    LB_JOB,
    MIB,
    ROUTER_JOB,
    SHADOW_FAILED,
    Names,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import (
    PHASES,
    resolve_thresholds,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.triggers import resolve_triggers

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The rate windows the shipped inventories render their rules with (production first: the default).
WINDOWS = ("1m", "5s", "30s", "2m", "5m")
WINDOW = "$window"
N = Names(WINDOW)
ROUTER = f'job="{ROUTER_JOB}"'
LB = f'job="{LB_JOB}"'
TAGS = ["msgroute", "rollout"]
SLA_COLOR = "orange"
TRIGGER_COLOR = "red"
SLA_LEGEND = "promotion SLA (hold)"
TRIGGER_LEGEND = "rollback trigger"

# ------------------------------------------------------------------------------------------ thresholds


@dataclass(frozen=True)
class Levels:
    """One setting's value per phase at both levels (None: not set for that phase)."""

    sla: Mapping[str, float | None]
    trigger: Mapping[str, float | None]


def _levels(gates: Mapping[str, Mapping[str, Any]], field: str, scale: float = 1.0) -> Levels:
    def scaled(value: float | None) -> float | None:
        return None if value is None else value * scale

    sla, trigger = {}, {}
    for phase in PHASES:
        gate = gates.get(phase) or {}
        sla[phase] = scaled(getattr(resolve_thresholds(phase, gate.get("thresholds")), field, None))
        trigger[phase] = scaled(getattr(resolve_triggers(phase, gate.get("triggers")), field, None))
    return Levels(sla, trigger)


def _num(value: float) -> str:
    return format(value, ".15g")


def phase_line(values: Mapping[str, float | None]) -> str | None:
    """A constant per phase, drawn while that phase is in force (None when no phase sets one); phases that
    share a value share one term."""
    phases_by_value: dict[float, list[str]] = {}
    for phase, value in values.items():
        if value is not None:
            phases_by_value.setdefault(value, []).append(phase)
    parts = [
        f'(vector({_num(value)}) and on() {N.phase}{{phase=~"{"|".join(phases)}"}})'
        for value, phases in phases_by_value.items()
    ]
    return "\nor ".join(parts) or None


# -------------------------------------------------------------------------------------------- panels


def _query(expr: str, legend: str, ref: str, instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return query.instant() if instant else query.range()


def _dashed(name: str, color: str) -> tuple[str, list[model.DynamicConfigValue]]:
    return name, [
        model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color}),
        model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
        model.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
    ]


def _steps(*steps: tuple[float | None, str]) -> dashboard_builder.ThresholdsConfig:
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def graph(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[tuple[str, str]],
    *,
    levels: Levels | None = None,
    steps: Sequence[tuple[float | None, str]] = (),
    span: int = 12,
) -> timeseries.Panel:
    """A time series of ``(expr, legend)`` queries; ``levels`` add the SLA and trigger lines of the phase in
    force, ``steps`` Grafana threshold lines (for a panel about one phase)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(8)
        .fill_opacity(10)
        .legend(
            common_builder.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
    )
    refs = iter("ABCDEFGH")
    for expr, legend in queries:
        panel = panel.with_target(_query(expr, legend, next(refs)))
    if levels is not None:
        for values, legend, color in (
            (levels.sla, SLA_LEGEND, SLA_COLOR),
            (levels.trigger, TRIGGER_LEGEND, TRIGGER_COLOR),
        ):
            expr = phase_line(values)
            if expr is not None:
                panel = panel.with_target(_query(expr, legend, next(refs)))
                panel = panel.override_by_name(*_dashed(legend, color))
    if steps:
        panel = panel.thresholds(_steps(*steps)).thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    return panel


def single(
    title: str,
    description: str,
    expr: str,
    legend: str,
    unit: str = "none",
    steps: Sequence[tuple[float | None, str]] = ((None, "blue"),),
    span: int = 4,
    text: common.BigValueTextMode = common.BigValueTextMode.AUTO,
) -> stat.Panel:
    """The value now (an instant query); ``text`` NAME shows the legend instead of the value."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(4)
        .with_target(_query(expr, legend, "A", instant=True))
        .thresholds(_steps(*steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(text)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


# ------------------------------------------------------------------------------------------ queries

P99 = (
    "histogram_quantile(0.99, sum by (pool, le) "
    f"(rate(msgroute_request_duration_seconds_bucket{{{ROUTER}}}[{WINDOW}])))"
)
LB_P95 = (
    "histogram_quantile(0.95, sum by (pool, le) "
    f"(rate(msgroute_lb_request_duration_seconds_bucket{{{LB}}}[{WINDOW}])))"
)
QUEUE_DEPTH = f"sum by (pool, queue) (msgroute_queue_depth{{{ROUTER}}})"
MIRROR_BY_RESULT = f"sum by (result) (rate(msgroute_lb_mirror_requests_total{{{LB}}}[{WINDOW}]))"
REQUESTS_BY_MIRRORED = f"sum by (pool, mirrored) (rate(msgroute_requests_total{{{ROUTER}}}[{WINDOW}]))"
P95_NEW_MINUS_LEGACY = f'{N.p95}{{pool="new"}} - ignoring(pool) {N.p95}{{pool="legacy"}}'
SUCCESS_NEW_MINUS_LEGACY = f'{N.success}{{pool="new"}} - ignoring(pool) {N.success}{{pool="legacy"}}'


def _variables() -> list[Any]:
    window = (
        dashboard_builder.CustomVariable("window")
        .label("Rate window")
        .description(
            "The rollout_alerting.rate_window the rules were rendered with: the recorded series carry it in "
            "their name (1m in production, 5s in inventories/local)."
        )
        .values(",".join(WINDOWS))
        .current(model.VariableOption(selected=True, text=WINDOWS[0], value=WINDOWS[0]))
    )
    datasource = dashboard_builder.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    return [datasource, window]


def _dashboard(uid: str, title: str, description: str) -> dashboard_builder.Dashboard:
    board = (
        dashboard_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for variable in _variables():
        board = board.with_variable(variable)
    return board


def routing_engine_performance(gates: Mapping[str, Mapping[str, Any]]) -> dashboard_builder.Dashboard:
    """Per pool, new beside legacy, with the SLA and rollback trigger of the phase in force."""
    p95 = _levels(gates, "max_p95_ms", 1 / 1000)
    success = _levels(gates, "min_success_rate", 1 / 100)
    memory = _levels(gates, "max_memory_mb", MIB)
    breakers = _levels(gates, "max_open_breakers")
    failovers = _levels(gates, "max_failover_percent", 1 / 100)
    failovers = Levels({}, {p: v for p, v in failovers.trigger.items() if p != "shadow"})
    rows: list[tuple[str, list[Any]]] = [
        (
            "Traffic in force",
            [
                single(
                    "Phase in force",
                    "Read from the lb's gauges, as the alerts are: weight 0 with copies is shadow, 1-99 "
                    "partial, 100 full. Empty: traffic is on legacy only.",
                    N.phase,
                    "{{phase}}",
                    text=common.BigValueTextMode.NAME,
                ),
                single(
                    "New pool weight",
                    "Percent of live requests the split sends to the new pool (highest of the lbs).",
                    N.weight,
                    "weight",
                    "percent",
                ),
                single(
                    "Shadow copies",
                    "Percent of requests the lb copies to the new pool (highest of the lbs).",
                    N.shadow_percent,
                    "shadow",
                    "percent",
                ),
                single(
                    "Routers up",
                    "Scrape targets up per pool.",
                    N.up,
                    "{{pool}}",
                    steps=((None, "red"), (1, "green")),
                    span=12,
                ),
            ],
        ),
        (
            "Router pools",
            [
                graph(
                    "Request rate",
                    "Route answers per second by pool (shadow copies included for the new pool).",
                    "reqps",
                    [(N.requests, "{{pool}}")],
                ),
                graph(
                    "Success share",
                    "Share of route answers that are not 5xx, by pool.",
                    "percentunit",
                    [(N.success, "{{pool}}")],
                    levels=success,
                ),
                graph(
                    "p95 latency",
                    "p95 of POST /v1/route over the rate window, by pool.",
                    "s",
                    [(N.p95, "{{pool}}")],
                    levels=p95,
                ),
                graph(
                    "p99 latency",
                    "p99 of POST /v1/route over the rate window, by pool. No gate reads a p99; the line is "
                    "the p95 rollback trigger, for scale.",
                    "s",
                    [(P99, "{{pool}}")],
                    levels=Levels({}, p95.trigger),
                ),
                graph(
                    "Memory",
                    "Largest resident memory of an instance, by pool.",
                    "bytes",
                    [(N.memory, "{{pool}}")],
                    levels=memory,
                ),
                graph(
                    "Queue depth",
                    "Messages waiting for dispatch, by pool and queue.",
                    "short",
                    [(QUEUE_DEPTH, "{{pool}} {{queue}}")],
                ),
                graph(
                    "Open circuit breakers",
                    "Destinations whose breaker is open, by pool. Any open breaker in the new pool is a "
                    "rollback trigger by default.",
                    "short",
                    [(N.breakers, "{{pool}}")],
                    levels=breakers,
                    span=24,
                ),
            ],
        ),
        (
            "Load balancer",
            [
                graph(
                    "lb answers per pool",
                    "Client requests answered per second, by the pool that answered.",
                    "reqps",
                    [(N.lb_requests_by_pool, "{{pool}}")],
                ),
                graph(
                    "Client-seen p95 by answering pool",
                    "p95 of the time nginx took to answer the client.",
                    "s",
                    [(LB_P95, "{{pool}}")],
                ),
                graph(
                    "Failovers to legacy",
                    "Share of the requests the split sent to the new pool that legacy answered.",
                    "percentunit",
                    [(N.failover_ratio, "failover share")],
                    levels=failovers,
                ),
                graph(
                    "Weight and shadow percent in force",
                    "What the lbs apply now, beside the share of live answers the new pool gave.",
                    "percent",
                    [
                        (N.weight, "new pool weight"),
                        (N.shadow_percent, "shadow copies"),
                        (f"{N.lb_new_share} * 100", "new pool share of answers"),
                    ],
                ),
            ],
        ),
    ]
    board = _dashboard(
        "msgroute-routing-engine-performance",
        "msgroute - routing engine performance",
        "The router pools side by side with the promotion SLA and rollback trigger of the phase in force.",
    )
    return _with_rows(board, rows)


def shadow_comparison(gates: Mapping[str, Mapping[str, Any]]) -> dashboard_builder.Dashboard:
    """New (answering copies) beside legacy (answering clients), with the shadow phase's levels."""
    gate = gates.get("shadow") or {}
    sla = resolve_thresholds("shadow", gate.get("thresholds"))
    trigger = resolve_triggers("shadow", gate.get("triggers"))
    p95_steps = [(None, "green"), (sla.max_p95_ms / 1000, SLA_COLOR)]
    if trigger.max_p95_ms is not None:
        p95_steps.append((trigger.max_p95_ms / 1000, TRIGGER_COLOR))
    success_steps = [(None, TRIGGER_COLOR)] if trigger.min_success_rate is not None else [(None, SLA_COLOR)]
    if trigger.min_success_rate is not None:
        success_steps.append((trigger.min_success_rate / 100, SLA_COLOR))
    success_steps.append((sla.min_success_rate / 100, "green"))
    memory_steps: list[tuple[float | None, str]] = [(None, "green")]
    if trigger.max_memory_mb is not None:
        memory_steps.append((trigger.max_memory_mb * MIB, TRIGGER_COLOR))
    failed_steps: list[tuple[float | None, str]] = [(None, "green")]
    if trigger.max_shadow_failure_percent is not None:
        failed_steps.append((trigger.max_shadow_failure_percent / 100, TRIGGER_COLOR))
    rows: list[tuple[str, list[Any]]] = [
        (
            "Shadow in force",
            [
                single(
                    "Shadow copies",
                    "Percent of requests the lb copies to the new pool.",
                    N.shadow_percent,
                    "shadow",
                    "percent",
                ),
                single(
                    "Copies per second",
                    "Shadow copies that reached the new pool (the lb's shed copies excluded).",
                    N.shadow_copies,
                    "copies",
                    "reqps",
                ),
                single(
                    "Failed copies",
                    "Share of the copies answered 5xx or not at all.",
                    N.shadow_failed,
                    "failed",
                    "percentunit",
                    steps=failed_steps,
                ),
            ],
        ),
        (
            "Mirrored copies",
            [
                graph(
                    "Copies by outcome",
                    f"Shadow copies per second by result at the lb; {SHADOW_FAILED} count as failed, "
                    "dropped copies were shed before they reached the new pool.",
                    "reqps",
                    [(MIRROR_BY_RESULT, "{{result}}")],
                ),
                graph(
                    "Failed copies",
                    "Share of the copies answered 5xx or not at all, with the shadow phase's rollback "
                    "trigger (max_shadow_failure_percent).",
                    "percentunit",
                    [(N.shadow_failed, "failed share")],
                    steps=failed_steps,
                ),
                graph(
                    "Requests by pool, mirrored or live",
                    "Route answers per second as the routers count them: the new pool should see mirrored "
                    "copies only while in shadow.",
                    "reqps",
                    [(REQUESTS_BY_MIRRORED, "{{pool}} mirrored={{mirrored}}")],
                    span=24,
                ),
            ],
        ),
        (
            "New vs legacy",
            [
                graph(
                    "p95 latency",
                    "p95 of the new pool (shadow copies) and of legacy (clients); lines: the shadow phase's "
                    "promotion SLA and rollback trigger.",
                    "s",
                    [(N.p95, "{{pool}}")],
                    steps=p95_steps,
                ),
                graph(
                    "p95 new minus legacy",
                    "Positive: the new pool is slower than legacy on the same traffic.",
                    "s",
                    [(P95_NEW_MINUS_LEGACY, "new - legacy")],
                ),
                graph(
                    "Success share",
                    "Share of answers that are not 5xx; lines: the shadow phase's levels.",
                    "percentunit",
                    [(N.success, "{{pool}}")],
                    steps=success_steps,
                ),
                graph(
                    "Success new minus legacy",
                    "Negative: the new pool fails more often than legacy.",
                    "percentunit",
                    [(SUCCESS_NEW_MINUS_LEGACY, "new - legacy")],
                ),
                graph(
                    "Memory",
                    "Largest resident memory of an instance, by pool; line: the shadow phase's memory limit.",
                    "bytes",
                    [(N.memory, "{{pool}}")],
                    steps=memory_steps,
                ),
                graph(
                    "Request rate",
                    "Route answers per second by pool.",
                    "reqps",
                    [(N.requests, "{{pool}}")],
                ),
            ],
        ),
        # Agreement between the pools' answers (issue 13) gets its own row here.
    ]
    board = _dashboard(
        "msgroute-shadow-comparison",
        "msgroute - shadow comparison",
        "The new pool answering shadow copies beside legacy answering the same clients.",
    )
    return _with_rows(board, rows)


def _with_rows(board: dashboard_builder.Dashboard, rows: Sequence[tuple[str, Sequence[Any]]]) -> Any:
    for title, panels in rows:
        board = board.with_row(dashboard_builder.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board


# ---------------------------------------------------------------------------------------------- output

BUILDERS = {
    "routing-engine-performance": routing_engine_performance,
    "shadow-comparison": shadow_comparison,
}


def to_json(board: dashboard_builder.Dashboard) -> dict[str, Any]:
    """The dashboard model as plain JSON data, panels numbered in order (Grafana needs unique ids)."""
    data = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(data["panels"], start=1):
        panel["id"] = number
    return data


def build_dashboards(gates: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
    """File name -> file text of every dashboard; ``gates`` per phase holds ``thresholds`` and ``triggers``
    overrides, as for the alert rules."""
    gates = gates or {}
    return {
        f"{name}.json": json.dumps(to_json(build(gates)), indent=2, sort_keys=True) + "\n"
        for name, build in BUILDERS.items()
    }


def main(argv: Sequence[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else HERE
    for name, text in build_dashboards().items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
