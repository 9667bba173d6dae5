"""The baseline judge: is the new pool worse than the legacy pool it replaces, over the same analysis run?

The threshold gate asks "is the new engine inside the SLA?"; this asks "is it worse than legacy?", which
catches a regression that is still inside the SLA (legacy at 12 ms p95, new at 30 ms, budget 48 ms).
It is Kayenta's NetflixACAJudge in miniature: each metric is compared with a one-sided Mann-Whitney U
test (scipy, not hand-written statistics) and classified Pass or High; the score is the share of
passing metrics; ``pass_score`` and ``marginal_score`` turn the score into a verdict.

Pure functions over each pool's histogram and counter increases over the run: from the scrapes the gate
already takes (provider web, ``measurement.target_delta``) or from Prometheus' ``increase`` of the same
series by pool (provider prometheus, ``pool_queries`` / ``prometheus_totals``); no I/O. Which phases judge
by default, and against which period of legacy, is ``PHASE_DEFAULTS``. docs/analysis.md explains the
statistical choices.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    import numpy as np
    from scipy.stats import mannwhitneyu
except ImportError:
    # Kept so the module can answer with missing_required_lib('scipy') instead of a traceback.
    HAS_SCIPY = False
    SCIPY_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_SCIPY = True
    SCIPY_IMPORT_ERROR = None

from ansible_collections.msgroute.rollout.plugins.module_utils._numbers import (
    fmt,
    is_nan,
    number,
    round_or_none,
    rounded,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.histogram import histogram_quantile
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    MetricNames,
    target_delta,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.prometheus import (
    PrometheusQueryError,
    label_selector,
    parse_prometheus_series,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.promtext import (
    MetricsParseError,
    parse_samples,
)

# Kayenta's metric classifications; a one-sided test has no "Low".
PASS = "Pass"
HIGH = "High"
NODATA = "Nodata"

LATENCY = "latency"
ERROR_RATE = "error_rate"

# Per pool and metric. Scaling counts down to this keeps memory at a few MB however long the run and
# only makes p-values less extreme (the test sees fewer samples), never a pass into a failure.
MAX_SAMPLES = 100_000

# Which of legacy's requests are the baseline: those served during the run (both pools at the same
# moments), or those served in the same length of time just before it (the full phase, where legacy serves
# nothing during the bake; only Prometheus keeps them).
DURING = "during"
BEFORE = "before"
BASELINE_PERIODS = (DURING, BEFORE)

# Per phase: (on by default, baseline period). Shadow is off: the new pool answers mirrored copies whose
# answers nobody reads, and the shadow gate's thresholds already bound them. Partial compares the pools at
# the same moments. Full has no legacy traffic to compare with, so legacy's last requests before the bake
# are the baseline - which only provider prometheus can read; with provider web the full judge is off.
PHASE_DEFAULTS: dict[str, tuple[bool, str]] = {
    "shadow": (False, DURING),
    "partial": (True, DURING),
    "full": (True, BEFORE),
}

# Worst first: a verdict combined from the threshold gate and the judge is the worse of the two.
_SEVERITY = (FAILED, ERROR, INCONCLUSIVE, SUCCESSFUL)


# --------------------------------------------------------------------------------------------- inputs


# field -> (minimum, maximum, minimum excluded, maximum excluded)
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "alpha": (0.0, 1.0, True, True),
    "pass_score": (0.0, 100.0, False, False),
    "marginal_score": (0.0, 100.0, False, False),
    # 0.5 would ask for P(new slower) > 1: nothing could ever be High.
    "latency_tolerance": (0.0, 0.5, False, True),
    "error_rate_tolerance": (0.0, 100.0, False, True),
    "min_samples": (1, MAX_SAMPLES, False, False),
}


@dataclass(frozen=True)
class JudgeConfig:
    """How the judge decides; values are coerced and checked on construction.

    ``latency_tolerance`` is a margin on the common-language effect size: latency is High only when
    P(a new request is slower than a legacy one) exceeds 0.5 + tolerance. ``error_rate_tolerance`` is in
    percentage points of error rate. Both exist because with thousands of requests a test finds
    *some* difference almost always; only a difference that matters may fail a release.
    """

    alpha: float = 0.05
    pass_score: float = 95.0
    marginal_score: float = 75.0
    latency_tolerance: float = 0.05
    error_rate_tolerance: float = 0.1
    min_samples: int = 100
    baseline_period: str = DURING

    def __post_init__(self) -> None:
        for name, (minimum, maximum, open_low, open_high) in _RANGES.items():
            value = number(
                f"judge.{name}",
                getattr(self, name),
                minimum=minimum,
                maximum=maximum,
                open_low=open_low,
                open_high=open_high,
            )
            object.__setattr__(self, name, value)
        if self.min_samples != int(self.min_samples):
            raise ValueError(f"judge.min_samples: must be a whole number, got {self.min_samples:g}")
        object.__setattr__(self, "min_samples", int(self.min_samples))
        if self.baseline_period not in BASELINE_PERIODS:
            raise ValueError(
                f"judge.baseline_period: expected one of {', '.join(BASELINE_PERIODS)}, "
                f"got {self.baseline_period!r}"
            )
        if self.marginal_score > self.pass_score:
            raise ValueError(
                f"judge.marginal_score: {self.marginal_score:g} is above pass_score {self.pass_score:g}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in JUDGE_FIELDS}


JUDGE_FIELDS = (*_RANGES, "baseline_period")


def _baseline_given(
    provider: str, baseline_targets: Sequence[str] | None, baseline_selector: Mapping[str, str] | None
) -> bool:
    return bool(baseline_selector) if provider == "prometheus" else bool(baseline_targets)


def _check_baseline(
    provider: str,
    baseline_targets: Sequence[str] | None,
    targets: Sequence[str],
    baseline_selector: Mapping[str, str] | None,
    selector: Mapping[str, str] | None,
) -> None:
    """Each provider reads its own baseline option and ignores the other's (as targets / prometheus_url)."""
    if provider == "prometheus":
        if not baseline_selector:
            raise ValueError(
                "baseline_selector: the legacy pool's label matchers (e.g. pool: legacy) are needed when "
                "judge.enabled is true with provider=prometheus"
            )
        if not selector:
            raise ValueError(
                "selector: the judge needs the new pool's label matchers (e.g. pool: new) with "
                "provider=prometheus; an empty selector would count legacy's requests as new"
            )
        if dict(selector) == dict(baseline_selector):
            raise ValueError("baseline_selector: equals selector; a pool cannot be its own baseline")
        return
    if not baseline_targets:
        raise ValueError(
            "baseline_targets: at least one legacy /metrics URL is needed when judge.enabled is true"
        )
    both = sorted(set(baseline_targets) & set(targets))
    if both:
        raise ValueError(f"baseline_targets: {both[0]} is also in targets; a pool cannot be its own baseline")


def judge_config(options: Mapping[str, Any], provider: str) -> JudgeConfig:
    """The judge's fields other than ``enabled``, checked (unset or None: the default)."""
    unknown = sorted(set(options) - set(JUDGE_FIELDS))
    if unknown:
        raise ValueError(
            f"judge.{unknown[0]}: unknown field; expected some of enabled, {', '.join(JUDGE_FIELDS)}"
        )
    config = JudgeConfig(**{name: value for name, value in options.items() if value is not None})
    if config.baseline_period == BEFORE and provider != "prometheus":
        raise ValueError(
            "judge.baseline_period: 'before' needs provider=prometheus; scrapes only see the run itself"
        )
    return config


def resolve_judge(
    options: Mapping[str, Any] | None,
    baseline_targets: Sequence[str] | None,
    provider: str,
    targets: Sequence[str] = (),
    baseline_selector: Mapping[str, str] | None = None,
    selector: Mapping[str, str] | None = None,
) -> JudgeConfig | None:
    """The judge's configuration, or None when it is off; ValueError names the offending option.

    ``enabled`` left unset means "on when there is a baseline to judge against": ``baseline_targets``
    with provider web, ``baseline_selector`` with provider prometheus; an explicit ``enabled: false`` wins.
    """
    options = dict(options or {})
    enabled = options.pop("enabled", None)
    if enabled is None:
        enabled = _baseline_given(provider, baseline_targets, baseline_selector)
    if not enabled:
        return None
    _check_baseline(provider, baseline_targets, targets, baseline_selector, selector)
    return judge_config(options, provider)


def judge_plan(config: JudgeConfig) -> str:
    """What the judge would compare, for a gate that says what it would do (check mode). Pure."""
    period = "at the same moments" if config.baseline_period == DURING else "just before the run"
    return (
        f"would judge it against legacy {period} (Mann-Whitney, alpha {config.alpha:g}, "
        f"pass score {config.pass_score:g})"
    )


_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _enabled(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    raise ValueError(f"judge.enabled: expected true or false, got {value!r}")


def phase_judge(phase: str, settings: Mapping[str, Any] | None, provider: str) -> dict[str, Any]:
    """One phase's judge as a rollout runs it (``enabled`` and every field, defaults filled in from
    ``PHASE_DEFAULTS`` and ``JudgeConfig``); ValueError names the field.

    The full phase's default baseline (legacy just before the bake) needs Prometheus, so with provider
    web the full judge is off unless asked for, and asking for it there is refused: legacy serves nothing
    during the bake, so it could only ever be Inconclusive and would hold every release.
    """
    settings = dict(settings or {})
    on_by_default, period = PHASE_DEFAULTS[phase]
    enabled = _enabled(settings.pop("enabled", None))
    if settings.get("baseline_period") is None:
        settings["baseline_period"] = period
    if enabled is None:
        enabled = on_by_default and (settings["baseline_period"] == DURING or provider == "prometheus")
    # Switched off, its fields are still checked, but not against a provider it will not use.
    config = judge_config(settings, provider if enabled else "prometheus")
    return {"enabled": enabled, **config.to_dict()}


# ---------------------------------------------------------------------------------------- pool totals


def _add(first: Mapping[Any, float], second: Mapping[Any, float]) -> dict[Any, float]:
    total = dict(first)
    for key, value in second.items():
        total[key] = total.get(key, 0.0) + value
    return total


@dataclass(frozen=True)
class PoolTotals:
    """One pool's requests over a run: cumulative bucket counts (le -> count) and requests by status
    class, summed over its targets and intervals; ``problems`` keeps each target's latest scrape problem.
    """

    buckets: Mapping[float, float] = field(default_factory=dict)
    by_status: Mapping[str, float] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)

    def __add__(self, other: PoolTotals) -> PoolTotals:
        return PoolTotals(
            buckets=_add(self.buckets, other.buckets),
            by_status=_add(self.by_status, other.by_status),
            problems={**self.problems, **other.problems},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (bucket bounds as strings, ``inf`` for +Inf), for state carried between tasks."""
        return {
            "buckets": {repr(float(le)): count for le, count in self.buckets.items()},
            "by_status": dict(self.by_status),
            "problems": dict(self.problems),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PoolTotals:
        """The totals back from ``to_dict``; None or {} is an empty pool."""
        data = data or {}
        try:
            return cls(
                buckets={float(le): float(count) for le, count in (data.get("buckets") or {}).items()},
                by_status={str(s): float(count) for s, count in (data.get("by_status") or {}).items()},
                problems={str(t): str(problem) for t, problem in (data.get("problems") or {}).items()},
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"progress.pools: not a pool's totals ({exc})") from None


def scrape_totals(
    before: Mapping[str, str | BaseException], after: Mapping[str, str | BaseException], names: MetricNames
) -> PoolTotals:
    """One interval of a pool: per-target deltas between two scrapes (target -> text or exception).

    Unlike a threshold measurement, one bad target does not void the others: the judge wants every
    request it can count, and an unreachable target's requests are counted at its next good scrape,
    whose baseline is its last good one.
    """
    totals = PoolTotals()
    for target, text in after.items():
        if not isinstance(text, str):
            totals += PoolTotals(problems={target: f"unreachable: {getattr(text, 'cause', text)}"})
            continue
        previous = before.get(target)
        if not isinstance(previous, str):
            continue  # no good baseline yet: this scrape becomes the baseline of the next interval
        try:
            delta = target_delta(parse_samples(previous), parse_samples(text), names)
        except MetricsParseError as exc:
            totals += PoolTotals(problems={target: str(exc)})
            continue
        totals += PoolTotals(buckets=delta.buckets, by_status=delta.by_status)
    return totals


def interval_requests(
    before: Mapping[str, str | BaseException], after: Mapping[str, str | BaseException], totals: PoolTotals
) -> float | None:
    """The requests one pool served over one interval (``totals``, its ``scrape_totals`` between ``before``
    and ``after``), for the report's traffic share; None unless every target answered both scrapes - a
    target's missed requests are counted at a later interval, which would skew this one's share."""
    complete = all(isinstance(after[t], str) and isinstance(before.get(t), str) for t in after)
    if not after or not complete or totals.problems:
        return None
    return float(sum(totals.by_status.values()))


# ------------------------------------------------------------------------------------- provider prometheus


BUCKETS = "buckets"
BY_STATUS = "by_status"


def pool_queries(
    selector: Mapping[str, str], seconds: int, names: MetricNames, offset_seconds: int = 0
) -> dict[str, str]:
    """The PromQL of one pool's totals over ``seconds`` (ending ``offset_seconds`` ago): the increase of
    each latency bucket, by ``le``, and of the request counter, by status class, summed over instances.

    Not the recording rules of role monitoring: they keep rates over a short window and a p95, while
    the test needs every request of the run in its bucket. ``increase`` handles counter resets (a
    restarted router) and, like the scrapes, sums over the pool's instances.
    """
    if int(seconds) < 1 or int(offset_seconds) < 0:
        raise ValueError(f"judge range: {seconds}s offset {offset_seconds}s is not a range of time")
    sel = label_selector(selector)
    span = f"[{int(seconds)}s]" + (f" offset {int(offset_seconds)}s" if offset_seconds else "")
    return {
        BUCKETS: f"sum by (le) (increase({names.histogram}_bucket{sel}{span}))",
        BY_STATUS: f"sum by ({names.status_label}) (increase({names.requests}{sel}{span}))",
    }


def run_range(run_seconds: float, period: str, delay_seconds: float = 0.0) -> tuple[int, int]:
    """(range, offset) in whole seconds of a pool's queries: the run itself for the new pool and a
    ``during`` baseline; for a ``before`` baseline the same length ending before the run's initial delay
    (``delay_seconds``) began, i.e. when the step's traffic change was made and legacy stopped serving."""
    seconds = max(1, math.ceil(run_seconds))
    return seconds, (seconds + math.ceil(delay_seconds) if period == BEFORE else 0)


def _bucket_bound(labels: Mapping[str, str]) -> float:
    try:
        return float(labels["le"])
    except (KeyError, ValueError):
        raise PrometheusQueryError(f"series {dict(labels)} has no numeric le label") from None


def prometheus_totals(
    answers: Mapping[str, Any], queries: Mapping[str, str], names: MetricNames
) -> PoolTotals:
    """One pool's totals from the answers to ``pool_queries`` (by key: decoded JSON, or the exception
    its query raised). A failed or empty query is a problem named by its PromQL, so an Inconclusive
    judge says what it could not see. A NaN stays NaN: the judged metric is then High (fail closed).
    """
    buckets: dict[float, float] = {}
    by_status: dict[str, float] = {}
    problems: dict[str, str] = {}
    for key, query in queries.items():
        answer = answers.get(key)
        if isinstance(answer, BaseException) or answer is None:
            problems[query] = f"query failed: {answer}"
            continue
        try:
            series = parse_prometheus_series(answer)
            if not series:
                problems[query] = "no series (no such pool, or no requests in the range)"
            for labels, value in series:
                if key == BUCKETS:
                    bound = _bucket_bound(labels)
                    buckets[bound] = buckets.get(bound, 0.0) + value
                else:
                    status = labels.get(names.status_label, "")
                    by_status[status] = by_status.get(status, 0.0) + value
        except PrometheusQueryError as exc:
            problems[query] = str(exc)
            if key == BUCKETS:
                buckets = {}
            else:
                by_status = {}
    return PoolTotals(buckets=buckets, by_status=by_status, problems=problems)


# ---------------------------------------------------------------------------------------------- samples


def common_histogram(
    new: Mapping[float, float], legacy: Mapping[float, float]
) -> tuple[list[float], list[float], list[float]] | None:
    """Both pools' cumulative counts at the bucket bounds they share, or None without a shared +Inf.

    A cumulative count at a bound is exact whatever the other bounds are, so two layouts are compared
    on their common, coarser layout instead of pairing buckets that do not cover the same latencies.
    Decreases (a restart mixed into a sum) are flattened, as ``histogram_quantile`` does.
    """
    bounds = sorted(set(new) & set(legacy))
    if not bounds or bounds[-1] != math.inf:
        return None

    def monotonic(histogram: Mapping[float, float]) -> list[float]:
        counts, highest = [], 0.0
        for bound in bounds:
            highest = max(highest, float(histogram[bound]))
            counts.append(highest)
        return counts

    return bounds, monotonic(new), monotonic(legacy)


def per_bucket(cumulative: Sequence[float]) -> list[float]:
    """Counts per bucket from cumulative counts (already monotonic)."""
    return [count - (cumulative[i - 1] if i else 0.0) for i, count in enumerate(cumulative)]


def scale_counts(counts: Sequence[float], cap: int = MAX_SAMPLES) -> list[int]:
    """Whole counts that sum to at most ``cap``, in the same proportions (largest remainder rounding).

    This bounds the memory of the expanded samples; the test then sees at most ``cap`` requests per
    pool, which makes its p-value less extreme, i.e. the judge more lenient, never stricter.
    """
    whole = [max(0, round(count)) for count in counts]
    total = sum(whole)
    if total <= cap:
        return whole
    exact = [count * cap / total for count in whole]
    scaled = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - scaled[i], reverse=True)
    for i in by_remainder[: cap - sum(scaled)]:
        scaled[i] += 1
    return scaled


def mann_whitney(
    values: Sequence[float], new_counts: Sequence[int], legacy_counts: Sequence[int]
) -> tuple[float, float]:
    """(one-sided p-value, common-language effect size) of "new is stochastically greater than legacy".

    Each request becomes one sample at its bucket's value. Almost every sample ties with others, so
    the asymptotic method with scipy's tie correction is used (the exact distribution assumes no
    ties). The effect size is U / (n_new * n_legacy): P(new > legacy) + P(equal) / 2.
    """
    grid = np.asarray(values, dtype=float)
    new = np.repeat(grid, np.asarray(new_counts, dtype=np.int64))
    legacy = np.repeat(grid, np.asarray(legacy_counts, dtype=np.int64))
    result = mannwhitneyu(new, legacy, alternative="greater", method="asymptotic")
    p_value = float(result.pvalue)
    # Every sample equal: zero variance and no evidence of any difference.
    return (1.0 if math.isnan(p_value) else p_value), float(result.statistic) / (new.size * legacy.size)


# ------------------------------------------------------------------------------------------- judgement


def _significant(value: float | None) -> float | None:
    """p-values keep their significant digits: 3e-12 rounded to 4 decimals would read as 0."""
    return None if value is None else float(f"{value:.4g}")


@dataclass
class MetricJudgement:
    """One metric's classification and the figures behind it; ``reason`` names them in one phrase."""

    metric: str
    classification: str
    reason: str
    p_value: float | None = None
    effect: float | None = None
    effect_limit: float | None = None
    requests: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    new: dict[str, float | None] = field(default_factory=dict)
    legacy: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classification": self.classification,
            "reason": self.reason,
            "p_value": _significant(self.p_value),
            "effect": round_or_none(self.effect),
            "effect_limit": round_or_none(self.effect_limit),
            "requests": {pool: rounded(count) for pool, count in self.requests.items()},
            "samples": dict(self.samples),
            # True when the counts were scaled down to MAX_SAMPLES before the test.
            "scaled": any(n < round(self.requests[pool]) for pool, n in self.samples.items()),
            "new": {key: round_or_none(value) for key, value in self.new.items()},
            "legacy": {key: round_or_none(value) for key, value in self.legacy.items()},
        }


def _signed(value: float) -> str:
    return ("-" if value < 0 else "+") + fmt(abs(value))


def _p(value: float) -> str:
    return f"{value:.2g}"


def _too_few(metric: str, requests: Mapping[str, float], config: JudgeConfig) -> str | None:
    short = [f"{pool} {fmt(n)}" for pool, n in requests.items() if n < config.min_samples]
    if not short:
        return None
    return f"{metric}: too few requests ({', '.join(short)}) < min_samples {config.min_samples}"


def _classify(p_value: float, effect: float, limit: float, config: JudgeConfig) -> str:
    """High needs both: significant (p < alpha) and larger than the tolerance. Either alone passes."""
    return HIGH if p_value < config.alpha and effect > limit else PASS


def _nan_pools(new: PoolTotals, legacy: PoolTotals, part: str) -> list[str]:
    """The pools with a NaN bound or count in ``part`` (buckets or by_status) of their totals."""
    return [
        pool
        for pool, totals in (("new", new), ("legacy", legacy))
        if any(is_nan(key) or is_nan(count) for key, count in getattr(totals, part).items())
    ]


def _nan_judgement(metric: str, what: str, pools: Sequence[str]) -> MetricJudgement:
    """Fail closed: a NaN in either pool's counts makes the metric High, never a pass or Nodata."""
    return MetricJudgement(
        metric, HIGH, f"{what} High: NaN in the {' and '.join(pools)} pool's counts; a NaN is never a pass"
    )


def judge_latency(new: PoolTotals, legacy: PoolTotals, config: JudgeConfig) -> MetricJudgement:
    """Latency of every request of the run, new vs legacy, on the buckets both pools expose.

    Samples sit at their bucket's upper bound (``le``), +Inf at infinity. The test and the effect size
    only use ranks, so any increasing choice of value per bucket (upper bound, midpoint) gives the same
    U, p-value and effect; the upper bound is the one the exposition states and needs no invented
    number for the first and the +Inf bucket. p50 and p95 are reported for humans.
    """
    nan_pools = _nan_pools(new, legacy, "buckets")
    if nan_pools:
        return _nan_judgement(LATENCY, "latency", nan_pools)
    common = common_histogram(new.buckets, legacy.buckets)
    if common is None:
        return MetricJudgement(
            LATENCY, NODATA, "latency: no histogram with a +Inf bucket in common between new and legacy"
        )
    bounds, new_cumulative, legacy_cumulative = common
    requests = {"new": new_cumulative[-1], "legacy": legacy_cumulative[-1]}
    described = {}
    for pool, cumulative in (("new", new_cumulative), ("legacy", legacy_cumulative)):
        histogram = {bound: cumulative[i] for i, bound in enumerate(bounds)}
        p50, p95 = (histogram_quantile(q, histogram) for q in (0.5, 0.95))
        described[pool] = {
            "p50_ms": None if p50 is None else p50 * 1000.0,
            "p95_ms": None if p95 is None else p95 * 1000.0,
        }
    base = {"requests": requests, "new": described["new"], "legacy": described["legacy"]}
    too_few = _too_few("latency", requests, config)
    if too_few:
        return MetricJudgement(LATENCY, NODATA, too_few, **base)
    if len(bounds) < 2:
        return MetricJudgement(
            LATENCY, NODATA, "latency: new and legacy share no finite bucket bound", **base
        )
    new_counts = scale_counts(per_bucket(new_cumulative))
    legacy_counts = scale_counts(per_bucket(legacy_cumulative))
    p_value, effect = mann_whitney(bounds, new_counts, legacy_counts)
    limit = 0.5 + config.latency_tolerance
    classification = _classify(p_value, effect, limit, config)
    p95 = ""
    new_p95, legacy_p95 = described["new"]["p95_ms"], described["legacy"]["p95_ms"]
    if new_p95 is not None and legacy_p95 is not None:
        p95 = f"; p95 new {fmt(new_p95)} ms vs legacy {fmt(legacy_p95)} ms"
    reason = (
        f"latency {classification}: p={_p(p_value)} {'<' if p_value < config.alpha else '>='} alpha "
        f"{config.alpha:g}, P(new slower than legacy)={effect:.3f} {'>' if effect > limit else '<='} "
        f"{fmt(limit)}{p95}"
    )
    return MetricJudgement(
        LATENCY,
        classification,
        reason,
        p_value=p_value,
        effect=effect,
        effect_limit=limit,
        samples={"new": sum(new_counts), "legacy": sum(legacy_counts)},
        **base,
    )


def _failed_requests(totals: PoolTotals, names: MetricNames) -> tuple[float, float]:
    total = sum(totals.by_status.values())
    failed = sum(totals.by_status.get(status, 0.0) for status in names.failure_classes)
    return total, failed


def judge_error_rate(
    new: PoolTotals, legacy: PoolTotals, config: JudgeConfig, names: MetricNames
) -> MetricJudgement:
    """Errors of every request of the run: a 1 for a request in a failure class, 0 otherwise.

    The effect is the difference of error rates in percentage points, not the common-language effect
    size: on 0/1 samples that is 0.5 + difference / 2, so any tolerance on it would either ignore a
    tenfold error rate or fail on noise. Percentage points compare directly with the SLA's budget.
    """
    nan_pools = _nan_pools(new, legacy, "by_status")
    if nan_pools:
        return _nan_judgement(ERROR_RATE, "error rate", nan_pools)
    (new_total, new_failed), (legacy_total, legacy_failed) = (
        _failed_requests(new, names),
        _failed_requests(legacy, names),
    )
    requests = {"new": new_total, "legacy": legacy_total}
    rates = {
        pool: (100.0 * failed / total if total > 0 else None)
        for pool, total, failed in (("new", new_total, new_failed), ("legacy", legacy_total, legacy_failed))
    }
    base = {
        "requests": requests,
        "new": {"error_rate": rates["new"]},
        "legacy": {"error_rate": rates["legacy"]},
    }
    too_few = _too_few("error rate", requests, config)
    if too_few:
        return MetricJudgement(ERROR_RATE, NODATA, too_few, **base)
    new_counts = scale_counts([new_total - new_failed, new_failed])
    legacy_counts = scale_counts([legacy_total - legacy_failed, legacy_failed])
    p_value = mann_whitney([0.0, 1.0], new_counts, legacy_counts)[0]
    effect = rates["new"] - rates["legacy"]
    limit = config.error_rate_tolerance
    classification = _classify(p_value, effect, limit, config)
    reason = (
        f"error rate {classification}: p={_p(p_value)} {'<' if p_value < config.alpha else '>='} alpha "
        f"{config.alpha:g}, new {fmt(rates['new'])} % vs legacy {fmt(rates['legacy'])} % "
        f"({_signed(effect)} pp {'>' if effect > limit else '<='} {fmt(limit)} pp)"
    )
    return MetricJudgement(
        ERROR_RATE,
        classification,
        reason,
        p_value=p_value,
        effect=effect,
        effect_limit=limit,
        samples={"new": sum(new_counts), "legacy": sum(legacy_counts)},
        **base,
    )


@dataclass
class JudgeResult:
    """The judge's verdict; ``summary`` is one line for the task message."""

    verdict: str
    score: float | None
    summary: str
    metrics: list[MetricJudgement]
    config: JudgeConfig
    problems: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "score": None if self.score is None else round(self.score, 2),
            "summary": self.summary,
            "metrics": {m.metric: m.to_dict() for m in self.metrics},
            "settings": self.config.to_dict(),
            "scrape_problems": {pool: dict(problems) for pool, problems in self.problems.items()},
        }


def _scrape_problems(problems: Mapping[str, Mapping[str, str]]) -> str:
    listed = [f"{pool} {target}: {why}" for pool, by in problems.items() for target, why in by.items()]
    return f" (scrape problems: {'; '.join(listed)})" if listed else ""


def judge_pools(
    new: PoolTotals, legacy: PoolTotals, config: JudgeConfig, names: MetricNames | None = None
) -> JudgeResult:
    """Classify every metric, score, and decide like Kayenta's threshold score classifier.

    score = 100 * Pass / metrics with data; >= pass_score Successful, >= marginal_score Inconclusive
    (marginal), else Failed. A metric without enough samples (Nodata) is left out of the score, but the
    judge is never Successful while one is missing: it cannot vouch for what it did not see.
    """
    names = names or MetricNames()
    metrics = [judge_latency(new, legacy, config), judge_error_rate(new, legacy, config, names)]
    problems = {pool: dict(t.problems) for pool, t in (("new", new), ("legacy", legacy)) if t.problems}
    scored = [m for m in metrics if m.classification != NODATA]
    missing = [m for m in metrics if m.classification == NODATA]
    if not scored:
        why = "; ".join(m.reason for m in missing)
        summary = f"{INCONCLUSIVE}: too few samples: {why}{_scrape_problems(problems)}"
        return JudgeResult(INCONCLUSIVE, None, summary, metrics, config, problems)
    high = [m for m in scored if m.classification == HIGH]
    score = 100.0 * (len(scored) - len(high)) / len(scored)
    if score >= config.pass_score:
        verdict, rule = SUCCESSFUL, f"score {score:g} >= pass_score {config.pass_score:g}"
    elif score >= config.marginal_score:
        verdict = INCONCLUSIVE
        rule = f"marginal: score {score:g} < pass_score {config.pass_score:g}"
    else:
        verdict, rule = FAILED, f"score {score:g} < marginal_score {config.marginal_score:g}"
    details = [m.reason for m in (high or scored)]
    if missing:
        details += [m.reason for m in missing]
        if verdict == SUCCESSFUL:
            verdict, rule = INCONCLUSIVE, f"{rule}, but {', '.join(m.metric for m in missing)} not judged"
    summary = f"{verdict} ({rule}): {'; '.join(details)}"
    if missing:
        summary += _scrape_problems(problems)
    return JudgeResult(verdict, score, summary, metrics, config, problems)


def combine_verdicts(analysis: str, judge: str) -> str:
    """The run's verdict: the worse of the threshold gate's and the judge's (Failed worst, then Error,
    Inconclusive, Successful), so either one failing fails the step."""
    for verdict in _SEVERITY:
        if verdict in (analysis, judge):
            return verdict
    return analysis


def combined_message(analysis_verdict: str, analysis_message: str, judge: JudgeResult) -> str:
    """One line led by whichever side decided the verdict, so the reason to revert comes first."""
    verdict = combine_verdicts(analysis_verdict, judge.verdict)
    if verdict == analysis_verdict:
        return f"{analysis_message}; baseline judge {judge.summary}"
    return f"{verdict}: baseline judge {judge.summary}; analysis {analysis_message}"
