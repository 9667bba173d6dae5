"""``promtool test rules`` cases for every alert of a rendered rules file, built from the same settings.

For each alert of each phase group, a breach is played on synthetic scrapes: a healthy stretch, then the
measured value just past the alert's threshold (or just inside it), or no data at all. The cases assert:

- ``past``: quiet until the breach has lasted its ``for``, then firing with the phase, version, action and
  the value and threshold in the annotations, as Prometheus renders them;
- ``inside``: still quiet when the ``past`` case fires;
- ``no_series`` and ``nan`` (NaN samples, or idle counters whose rates make NaN shares and p95): quiet - no
  data never reverts a release, except the alerts that exist for absence, which fire;
- ``thin``: past the threshold over fewer requests than ``min_requests``: quiet;
- ``legacy_only``: past the threshold while the lb sends the new pool nothing (no phase in force): quiet.

Scrapes come every fifth of the rate window, so a rate always sees several samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils.alert_rules import (
    MIB,
    STARVED_SHARE,
    humanize_1024,
    humanize_duration,
    humanize_percentage,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import resolve_thresholds
from ansible_collections.msgroute.rollout.plugins.module_utils.triggers import (
    AlertTiming,
    resolve_alerting,
    resolve_triggers,
)

LB = {"job": "msgroute-lb", "instance": "lb1:9145"}
NEW = {"job": "msgroute-router", "pool": "new", "instance": "router-1:8080"}
PHASE_LB = {"shadow": (0, 10), "partial": (50, 0), "full": (100, 0)}
STEPS_PER_WINDOW = 5
HEALTHY_STEPS = 2 * STEPS_PER_WINDOW
VOLUME = 100_000.0  # requests per scrape interval: far above any min_requests
LEAK_BASE = 0.25  # healthy memory, as a share of the limit


def selector(name: str, labels: Mapping[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def go_value(value: float) -> str:
    """``{{ $value }}`` as Go's text/template prints a float64."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def _stable(render: Callable[[float], str], value: float) -> bool:
    """The rendering does not depend on float noise in the last digits Prometheus computes."""
    return render(value * (1 - 1e-7)) == render(value * (1 + 1e-7)) == render(value)


def nudge(render: Callable[[float], str], make: Callable[[float], float]) -> float:
    """``make(margin)`` for the first margin whose value renders the same under float noise."""
    for margin in (0.004, 0.003, 0.006, 0.0035, 0.0045):
        value = make(margin)
        if _stable(render, value):
            return value
    raise AssertionError("no stable test value near the threshold")


@dataclass(frozen=True)
class Timeline:
    """Scrape times in steps; the breach starts after step ``healthy``."""

    step_s: float
    window_steps: int
    for_steps: int
    healthy: int
    fire: int  # a step by which the alert must fire
    quiet: int  # a step at which the breach cannot yet have lasted its ``for``

    @property
    def end(self) -> int:
        return self.fire + 2

    def at(self, step: int) -> str:
        return duration(step * self.step_s)


def duration(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def gauge(healthy: float, breach: float, tl: Timeline) -> str:
    return " ".join(_fmt(healthy if t <= tl.healthy else breach) for t in range(tl.end + 1))


def counter(healthy: float, breach: float, tl: Timeline) -> str:
    values, total = [], 0.0
    for t in range(tl.end + 1):
        if t:
            total += healthy if t <= tl.healthy else breach
        values.append(total)
    return " ".join(_fmt(v) for v in values)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


@dataclass(frozen=True)
class Case:
    """One alert of one phase and how to play it: series per shape, the value past the threshold."""

    alert: str
    phase: str | None
    kind: str
    threshold: float
    min_requests: int
    rule: Mapping[str, Any]


# --------------------------------------------------------------------------------- series per kind


def _latency_series(threshold: float, p95: float | None, volume: float, tl: Timeline) -> list[dict]:
    """Histogram whose p95 is ``p95`` (None: idle) with bounds around the threshold; healthy is far below."""
    bounds = [threshold * 0.5, threshold * 0.9, threshold * 1.1]
    series = []
    if p95 is None:
        per_bucket = [0.0] * 4
    else:
        lo, hi = bounds[1], bounds[2]
        share = (p95 - lo) / (hi - lo)  # where the p95 falls inside (lo, hi]
        upper = volume / 20  # requests in (lo, hi]
        lower = 20 * (0.95 - share) * upper  # requests at or below lo, so that rank 0.95 lands at ``share``
        per_bucket = [lower, lower, lower + upper, lower + upper]
    healthy = volume
    for le, breach in zip([*bounds, math.inf], per_bucket, strict=True):
        labels = {**NEW, "le": "+Inf" if le == math.inf else repr(le)}
        series.append(
            {
                "series": selector("msgroute_request_duration_seconds_bucket", labels),
                "values": counter(healthy, breach, tl),
            }
        )
    total = per_bucket[-1]
    series.append(
        {
            "series": selector("msgroute_requests_total", {**NEW, "status_class": "2xx"}),
            "values": counter(healthy, total, tl),
        }
    )
    return series


def _success_series(ratio: float | None, volume: float, tl: Timeline) -> list[dict]:
    ok, bad = (0.0, 0.0) if ratio is None else (ratio * volume, (1 - ratio) * volume)
    return [
        {
            "series": selector("msgroute_requests_total", {**NEW, "status_class": "2xx"}),
            "values": counter(volume, ok, tl),
        },
        {
            "series": selector("msgroute_requests_total", {**NEW, "status_class": "5xx"}),
            "values": counter(0, bad, tl),
        },
    ]


def _lb_requests(new: float, legacy: float, tl: Timeline, healthy: tuple[float, float]) -> list[dict]:
    return [
        {
            "series": selector("msgroute_lb_requests_total", {**LB, "pool": pool, "status_class": "2xx"}),
            "values": counter(h, b, tl),
        }
        for pool, h, b in (("new", healthy[0], new), ("legacy", healthy[1], legacy))
    ]


def _starved_series(share: float | None, weight: int, volume: float, tl: Timeline) -> list[dict]:
    expected_new = volume * weight / 100
    healthy = (expected_new, volume - expected_new)
    if share is None:
        return _lb_requests(0, 0, tl, healthy)
    new = share * expected_new
    return _lb_requests(new, volume - new, tl, healthy)


def _failover_series(ratio: float | None, volume: float, tl: Timeline) -> list[dict]:
    failovers, new = (0.0, 0.0) if ratio is None else (ratio * volume, (1 - ratio) * volume)
    return [
        {"series": selector("msgroute_lb_failovers_total", LB), "values": counter(0, failovers, tl)},
        *_lb_requests(new, 0, tl, (volume, 0)),
    ]


def _shadow_series(ratio: float | None, volume: float, tl: Timeline) -> list[dict]:
    failed = 0.0 if ratio is None else ratio * volume
    ok = 0.0 if ratio is None else volume - failed
    dropped = 0.0 if ratio is None else volume / 2  # shed by the lb: neither a success nor a failure
    per_result = {
        "2xx": (volume, ok),
        "5xx": (0, failed / 2),
        "error": (0, failed / 2),
        "dropped": (0, dropped),
    }
    return [
        {
            "series": selector("msgroute_lb_mirror_requests_total", {**LB, "result": result}),
            "values": counter(h, b, tl),
        }
        for result, (h, b) in per_result.items()
    ]


# ----------------------------------------------------------------------------------------- the cases


def cases_for(rules: Mapping[str, Any], plan: Mapping[str, Any]) -> list[Case]:
    """One case per alert of the rendered ``rules``, its threshold taken from the plan's settings (not from
    the rule), so a rule that compares with the wrong setting fails. An alert with no kind fails here."""
    cases = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            phase = rule["labels"].get("phase")
            kind, threshold, min_requests = _kind(rule["alert"], phase, plan)
            cases.append(Case(rule["alert"], phase, kind, threshold, min_requests, rule))
    return cases


def _kind(alert: str, phase: str | None, plan: Mapping[str, Any]) -> tuple[str, float, int]:
    if alert == "MsgrouteLbMetricsMissing":
        return "lb_missing", 1.0, 0
    gate = plan["gates"][phase]
    sla = resolve_thresholds(phase, gate["thresholds"])
    trig = resolve_triggers(phase, gate["triggers"])
    limits = sla if alert.endswith("SLA") else trig
    kinds: dict[str, tuple[str, Any]] = {
        "MsgrouteLatency": ("latency", lambda: limits.max_p95_ms / 1000),
        "MsgrouteSuccess": ("success", lambda: limits.min_success_rate / 100),
        "MsgrouteMemoryLeak": ("leak", lambda: trig.max_memory_mb * MIB),
        "MsgrouteMemory": ("memory", lambda: limits.max_memory_mb * MIB),
        "MsgrouteBreakers": ("breakers", lambda: float(limits.max_open_breakers)),
        "MsgrouteNewPoolAbsent": ("absent", lambda: 1.0),
        "MsgrouteNewPoolStarved": ("starved", lambda: STARVED_SHARE),
        "MsgrouteFailovers": ("failovers", lambda: trig.max_failover_percent / 100),
        "MsgrouteShadowFailures": ("shadow", lambda: trig.max_shadow_failure_percent / 100),
    }
    for prefix, (kind, threshold) in kinds.items():
        if alert.startswith(prefix):
            return kind, threshold(), trig.min_requests
    raise AssertionError(f"no promtool case for alert {alert}: add one to tests/promtool/cases.py")


RATE_KINDS = ("latency", "success", "starved", "failovers", "shadow")
RENDER = {
    "latency": humanize_duration,
    "success": humanize_percentage,
    "starved": humanize_percentage,
    "failovers": humanize_percentage,
    "shadow": humanize_percentage,
    "memory": lambda v: f"{humanize_1024(v)}B",
    "leak": lambda v: f"{humanize_1024(v)}B",
    "breakers": go_value,
    "absent": go_value,
    "lb_missing": go_value,
}
# Which side of the threshold breaches.
BELOW = ("success", "starved", "absent")


def _for_key(kind: str) -> str:
    return {
        "latency": "latency",
        "success": "success",
        "memory": "memory",
        "leak": "leak",
        "breakers": "breakers",
        "absent": "absent",
        "starved": "starved",
        "failovers": "failovers",
        "shadow": "shadow_failures",
        "lb_missing": "lb_metrics",
    }[kind]


def timeline(case: Case, timing: AlertTiming) -> Timeline:
    """When to check: ``quiet`` before the breach can have lasted its ``for``, ``fire`` when it has."""
    step_s = timing.seconds("rate_window") / STEPS_PER_WINDOW
    for_steps = math.ceil(timing.seconds(_for_key(case.kind)) / step_s - 1e-9)
    # The breach's first scrape is step healthy + 1: a gauge breaches there, a rate once its window holds
    # only the breach. The alert must fire ``for`` later, give or take one evaluation: rule groups run on
    # their own, so an alert may read a recorded series one evaluation late. A longer ``for`` fails.
    onset = HEALTHY_STEPS + (STEPS_PER_WINDOW if case.kind in RATE_KINDS else 1)
    fire = onset + for_steps + 1
    return Timeline(step_s, STEPS_PER_WINDOW, for_steps, HEALTHY_STEPS, fire, HEALTHY_STEPS + for_steps)


def _past_and_inside(case: Case) -> tuple[float, float]:
    render, t = RENDER[case.kind], case.threshold
    if case.kind == "breakers":  # one open breaker more than allowed, or exactly as many
        return t + 1, t
    if case.kind == "success":  # percentage points, not a share of the threshold
        return (
            nudge(render, lambda m: t - m * 12.5 / 100),  # 0.05 pp at the first margin
            nudge(render, lambda m: t + m * 12.5 / 100),
        )
    if case.kind in ("failovers", "shadow"):
        return nudge(render, lambda m: t + m / 8), nudge(render, lambda m: t - m / 8)
    if case.kind in BELOW:
        return nudge(render, lambda m: t * (1 - m)), nudge(render, lambda m: t * (1 + m))
    return nudge(render, lambda m: t * (1 + m)), nudge(render, lambda m: t * (1 - m))


def _lb_series(phase: str | None, tl: Timeline, legacy_only: bool = False) -> list[dict]:
    """The lb in the phase (its weight and shadow gauges), both it and a new-pool router up."""
    weight, shadow = (0, 0) if legacy_only or phase is None else PHASE_LB[phase]
    return [
        {"series": selector("msgroute_lb_new_weight", LB), "values": gauge(weight, weight, tl)},
        {"series": selector("msgroute_lb_shadow_percent", LB), "values": gauge(shadow, shadow, tl)},
        {"series": selector("up", NEW), "values": gauge(1, 1, tl)},
        {"series": selector("up", LB), "values": gauge(1, 1, tl)},
    ]


def _measured(case: Case, value: float | None, tl: Timeline, volume: float = VOLUME) -> list[dict]:
    """The series the alert reads, with ``value`` after the healthy stretch (None: idle counters / NaN)."""
    t = case.threshold
    if case.kind == "latency":
        return _latency_series(t, value, volume, tl)
    if case.kind == "success":
        return _success_series(value, volume, tl)
    if case.kind == "starved":
        return _starved_series(value, PHASE_LB[case.phase][0], volume, tl)
    if case.kind == "failovers":
        return _failover_series(value, volume, tl)
    if case.kind == "shadow":
        return _shadow_series(value, volume, tl)
    if case.kind == "memory":
        breach = math.nan if value is None else value
        return [
            {"series": selector("process_resident_memory_bytes", NEW), "values": gauge(t * 0.5, breach, tl)}
        ]
    if case.kind == "breakers":
        return _breaker_series(int(t), value, tl)
    raise AssertionError(case.kind)


def _breaker_series(allowed: int, open_count: float | None, tl: Timeline) -> list[dict]:
    """``allowed + 1`` destinations; past: all open; inside: ``allowed`` open and one half-open."""
    series = []
    for index in range(allowed + 1):
        if open_count is None:
            breach = math.nan
        elif open_count > allowed or index < allowed:
            breach = 2.0
        else:
            breach = 1.0  # half-open is not open
        labels = {**NEW, "destination": f"dest-{index}"}
        series.append({"series": selector("msgroute_breaker_state", labels), "values": gauge(0, breach, tl)})
    return series


def _expected(case: Case, value: float) -> list[dict]:
    rule = case.rule
    text = RENDER[case.kind](value)
    annotations = {}
    for key, template in rule["annotations"].items():
        for fragment in (
            "{{ $value | humanizeDuration }}",
            "{{ $value | humanizePercentage }}",
            "{{ $value | humanize1024 }}B",
            "{{ $value }}",
        ):
            template = template.replace(fragment, text)
        annotations[key] = template
    labels = dict(rule["labels"])
    if case.kind == "lb_missing":
        labels.update(LB)
    return [{"exp_labels": labels, "exp_annotations": annotations}]


def _test(tl: Timeline, series: list[dict], checks: list[tuple[int, str, list[dict]]]) -> dict[str, Any]:
    return {
        "interval": duration(tl.step_s),
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": tl.at(step), "alertname": alert, "exp_alerts": exp} for step, alert, exp in checks
        ],
    }


def tests_for(case: Case, timing: AlertTiming) -> Iterator[tuple[str, dict[str, Any]]]:
    """(shape, promtool test) pairs for one alert of one phase."""
    if case.kind == "leak":
        yield from _leak_tests(case, timing)
        return
    if case.kind in ("absent", "lb_missing"):
        yield from _absence_tests(case, timing)
        return
    tl = timeline(case, timing)
    past, inside = _past_and_inside(case)
    name = case.alert
    lb = _lb_series(case.phase, tl)
    yield (
        "past",
        _test(
            tl, lb + _measured(case, past, tl), [(tl.quiet, name, []), (tl.fire, name, _expected(case, past))]
        ),
    )
    yield "inside", _test(tl, lb + _measured(case, inside, tl), [(tl.fire, name, [])])
    yield "no_series", _test(tl, lb, [(tl.fire, name, [])])
    yield "nan", _test(tl, lb + _measured(case, None, tl), [(tl.fire, name, [])])
    yield (
        "legacy_only",
        _test(
            tl,
            _lb_series(case.phase, tl, legacy_only=True) + _measured(case, past, tl),
            [(tl.fire, name, [])],
        ),
    )
    if case.kind in RATE_KINDS and case.min_requests > 0:
        thin = case.min_requests / (2 * tl.window_steps)  # half of min_requests in the window
        yield "thin", _test(tl, lb + _measured(case, past, tl, volume=thin), [(tl.fire, name, [])])


def _absence_tests(case: Case, timing: AlertTiming) -> Iterator[tuple[str, dict[str, Any]]]:
    """The alerts for absence: a target going down fires after ``for``; no series and staleness fire too."""
    tl = timeline(case, timing)
    name = case.alert
    target = NEW if case.kind == "absent" else LB
    down = gauge(1, 0, tl)
    stale = " ".join(["1"] * (tl.healthy + 1) + ["stale"])

    def world(up: str | None, legacy_only: bool = False) -> list[dict]:
        series = [s for s in _lb_series(case.phase, tl, legacy_only) if s["series"] != selector("up", target)]
        return series + ([{"series": selector("up", target), "values": up}] if up is not None else [])

    expected = _expected(case, 0.0)
    yield "past", _test(tl, world(down), [(tl.quiet, name, []), (tl.fire, name, expected)])
    yield "inside", _test(tl, world(gauge(1, 1, tl)), [(tl.fire, name, [])])
    # No series at all: nothing is scraped. absent() carries only the selector's labels.
    none_expected = [dict(expected[0], exp_labels=_absent_labels(case, expected[0]["exp_labels"]))]
    yield "no_series", _test(tl, world(None), [(tl.fire, name, none_expected)])
    yield (
        "stale",
        _test(tl, world(stale), [(tl.quiet, name, []), (tl.fire, name, _stale_expected(case, expected))]),
    )
    if case.kind == "absent":
        yield "legacy_only", _test(tl, world(down, legacy_only=True), [(tl.fire, name, [])])


def _absent_labels(case: Case, labels: Mapping[str, str]) -> dict[str, str]:
    if case.kind == "lb_missing":
        return {k: v for k, v in labels.items() if k != "instance"}
    return dict(labels)


def _stale_expected(case: Case, expected: list[dict]) -> list[dict]:
    """A stale lb target leaves absent(), which carries only the selector's labels."""
    if case.kind != "lb_missing":
        return expected
    return [dict(expected[0], exp_labels=_absent_labels(case, expected[0]["exp_labels"]))]


def predict_linear(values: list[float], step_s: float, horizon_s: float) -> float:
    """Prometheus' predict_linear over samples ``step_s`` apart, the last at the evaluation time."""
    n = len(values)
    xs = [(i - (n - 1)) * step_s for i in range(n)]
    if all(v == values[0] for v in values):
        return values[0]
    sum_x, sum_y = sum(xs), sum(values)
    cov = sum(x * y for x, y in zip(xs, values, strict=True)) - sum_x * sum_y / n
    var = sum(x * x for x in xs) - sum_x * sum_x / n
    slope = cov / var
    return sum_y / n - slope * sum_x / n + slope * horizon_s


def _leak_tests(case: Case, timing: AlertTiming) -> Iterator[tuple[str, dict[str, Any]]]:
    """Memory rising linearly from a quarter of the limit after the healthy stretch."""
    limit, name = case.threshold, case.alert
    step_s = timing.seconds("rate_window") / STEPS_PER_WINDOW
    lookback = math.ceil(timing.seconds("leak_lookback") / step_s - 1e-9)
    horizon_s = timing.seconds("leak_horizon")
    for_steps = math.ceil(timing.seconds("leak") / step_s - 1e-9)
    m0 = LEAK_BASE * limit

    def ramp(slope: float, tl: Timeline) -> str:
        return " ".join(
            _fmt(m0 if t <= tl.healthy else m0 + slope * (t - tl.healthy) * step_s) for t in range(tl.end + 1)
        )

    # Past: the prediction reaches about 1.004 x limit once the lookback holds only the ramp, and rises on.
    target = nudge(RENDER["leak"], lambda m: limit * (1 + m))
    past_slope = (target - m0) / (lookback * step_s + horizon_s)

    def at(step: int) -> float:
        return m0 if step <= HEALTHY_STEPS else m0 + past_slope * (step - HEALTHY_STEPS) * step_s

    def prediction(step: int) -> float:
        return predict_linear([at(t) for t in range(max(0, step - lookback), step + 1)], step_s, horizon_s)

    steps = range(HEALTHY_STEPS, HEALTHY_STEPS + lookback + 2)
    onset = next((step for step in steps if prediction(step) > limit), None)
    if onset is None:
        raise AssertionError(f"the leak case never predicts past {limit} within the lookback")
    fire = onset + for_steps + 1
    if not _stable(RENDER["leak"], prediction(fire)):  # float noise must not show in the value
        fire += 1
    quiet = onset + for_steps - 1
    tl = Timeline(step_s, STEPS_PER_WINDOW, for_steps, HEALTHY_STEPS, fire, quiet)
    memory = selector("process_resident_memory_bytes", NEW)
    lb = _lb_series(case.phase, tl)
    yield (
        "past",
        _test(
            tl,
            [*lb, {"series": memory, "values": ramp(past_slope, tl)}],
            [(tl.quiet, name, []), (tl.fire, name, _expected(case, prediction(tl.fire)))],
        ),
    )
    # Inside: a slower leak whose prediction peaks at 0.996 x limit at the last scrape.
    inside_slope = (limit * 0.996 - m0) / ((tl.end - tl.healthy) * step_s + horizon_s)
    yield (
        "inside",
        _test(tl, [*lb, {"series": memory, "values": ramp(inside_slope, tl)}], [(tl.fire, name, [])]),
    )
    yield "no_series", _test(tl, lb, [(tl.fire, name, [])])
    nan = " ".join(["NaN"] * (tl.end + 1))
    yield "nan", _test(tl, [*lb, {"series": memory, "values": nan}], [(tl.fire, name, [])])
    yield (
        "legacy_only",
        _test(
            tl,
            [
                *_lb_series(case.phase, tl, legacy_only=True),
                {"series": memory, "values": ramp(past_slope, tl)},
            ],
            [(tl.fire, name, [])],
        ),
    )


def build_test_file(
    rule_file: str, rules: Mapping[str, Any], plan: Mapping[str, Any]
) -> tuple[dict, list[str]]:
    """The promtool test file for every alert of ``rules`` and the (alert, phase, shape) of each test."""
    timing = resolve_alerting(plan["alerting"])
    step = duration(timing.seconds("rate_window") / STEPS_PER_WINDOW)
    tests, names = [], []
    for case in cases_for(rules, plan):
        for shape, test in tests_for(case, timing):
            tests.append(test)
            names.append(f"{case.alert}/{case.phase}/{shape}")
    return {"rule_files": [rule_file], "evaluation_interval": step, "tests": tests}, names
