"""The baseline judge with provider prometheus: both pools' increases over the run as Prometheus answers
them (fixed answers here), turned into the totals the Mann-Whitney test takes; and its per-phase defaults."""

from __future__ import annotations

import math

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.judge import (
    BUCKETS,
    BY_STATUS,
    HIGH,
    NODATA,
    PASS,
    JudgeConfig,
    judge_pools,
    phase_judge,
    pool_queries,
    prometheus_totals,
    resolve_judge,
    run_range,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    MetricNames,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.prometheus import (
    PrometheusQueryError,
    parse_prometheus_series,
)

NAMES = MetricNames()
INF = math.inf
CONFIG = JudgeConfig()
NEW = pool_queries({"pool": "new"}, 30, NAMES)
LEGACY = pool_queries({"pool": "legacy"}, 30, NAMES)


def answer(series: list[tuple[dict[str, str], str]]) -> dict:
    """An /api/v1/query answer as Prometheus gives it: values are strings, at one evaluation time."""
    result = [{"metric": labels, "value": [1700000000.123, value]} for labels, value in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def le(bound: float) -> str:
    return "+Inf" if bound == INF else repr(bound)


def pool_answers(cumulative: dict[float, float | str], ok: float | str, failed: float | str = 0) -> dict:
    """The two answers of one pool: bucket increases by le (cumulative), requests by status class."""
    buckets = answer([({"le": le(bound)}, str(count)) for bound, count in cumulative.items()])
    statuses = [({"status_class": "2xx"}, str(ok))]
    if failed:
        statuses.append(({"status_class": "5xx"}, str(failed)))
    return {BUCKETS: buckets, BY_STATUS: answer(statuses)}


def judged(new: dict, legacy: dict, config: JudgeConfig = CONFIG):
    return judge_pools(prometheus_totals(new, NEW, NAMES), prometheus_totals(legacy, LEGACY, NAMES), config)


def metric(result, name: str):
    return next(m for m in result.metrics if m.metric == name)


# ------------------------------------------------------------------------------------------- queries


def test_pool_queries_sum_each_bucket_and_status_class_over_the_run() -> None:
    assert pool_queries({"pool": "legacy", "job": "msgroute-router"}, 900, NAMES) == {
        BUCKETS: (
            "sum by (le) (increase(msgroute_request_duration_seconds_bucket"
            '{job="msgroute-router",pool="legacy"}[900s]))'
        ),
        BY_STATUS: (
            "sum by (status_class) (increase(msgroute_requests_total"
            '{job="msgroute-router",pool="legacy"}[900s]))'
        ),
    }


def test_a_before_baseline_is_the_same_length_just_before_the_run() -> None:
    assert run_range(14.2, "during") == (15, 0)
    assert run_range(14.2, "before") == (15, 15)
    assert run_range(0.0, "during") == (1, 0)
    # It ends where the run's initial delay began: when the step changed the traffic.
    assert run_range(14.2, "before", 30.0) == (15, 45)
    assert run_range(14.2, "during", 30.0) == (15, 0)
    assert pool_queries({"pool": "legacy"}, 15, NAMES, 15)[BUCKETS].endswith(
        '{pool="legacy"}[15s] offset 15s))'
    )
    with pytest.raises(ValueError, match="is not a range of time"):
        pool_queries({"pool": "legacy"}, 0, NAMES)


def test_parse_series_keeps_labels_and_nan() -> None:
    series = parse_prometheus_series(answer([({"le": "0.05"}, "12.5"), ({"le": "+Inf"}, "NaN")]))
    assert series[0] == ({"le": "0.05"}, 12.5)
    assert series[1][0] == {"le": "+Inf"} and math.isnan(series[1][1])
    assert parse_prometheus_series(answer([])) == []
    with pytest.raises(PrometheusQueryError, match="expected an instant vector"):
        parse_prometheus_series({"status": "success", "data": {"resultType": "matrix", "result": []}})
    with pytest.raises(PrometheusQueryError, match="bad_data"):
        parse_prometheus_series({"status": "error", "errorType": "bad_data", "error": "parse error"})


# ------------------------------------------------------------------------------------------ verdicts

# Router buckets around the thresholds; counts are cumulative, as increase() of _bucket series is.
IDENTICAL = {0.005: 300.0, 0.01: 900.0, 0.025: 1700.0, 0.045: 1950.0, 0.05: 1990.0, 0.1: 2000.0, INF: 2000.0}


def test_identical_pools_pass() -> None:
    result = judged(pool_answers(IDENTICAL, 1998, 2), pool_answers(IDENTICAL, 1998, 2))
    latency, errors = metric(result, "latency"), metric(result, "error_rate")
    assert (latency.classification, errors.classification) == (PASS, PASS)
    assert latency.effect == pytest.approx(0.5)
    assert latency.samples == {"new": 2000, "legacy": 2000}
    assert (result.verdict, result.score) == (SUCCESSFUL, 100.0)


def test_increase_extrapolation_gives_fractional_counts_that_are_still_judged() -> None:
    """increase() extrapolates to the range's edges, so counts are rarely whole numbers."""
    fractional = {bound: count * 1.0371 for bound, count in IDENTICAL.items()}
    result = judged(pool_answers(fractional, 2074.2), pool_answers(IDENTICAL, 2000))
    assert metric(result, "latency").classification == PASS
    assert result.verdict == SUCCESSFUL


def test_new_pool_clearly_slower_fails() -> None:
    # The new pool's requests sit one to two buckets higher: p95 still under 48 ms, but plainly slower.
    slower = {0.005: 20.0, 0.01: 150.0, 0.025: 900.0, 0.045: 1900.0, 0.05: 1990.0, 0.1: 2000.0, INF: 2000.0}
    result = judged(pool_answers(slower, 2000), pool_answers(IDENTICAL, 2000))
    latency = metric(result, "latency")
    assert latency.classification == HIGH
    assert latency.p_value < 1e-12
    assert latency.effect > 0.7
    assert (result.verdict, result.score) == (FAILED, 50.0)
    assert result.summary.startswith("Failed (score 50 < marginal_score 75): latency High: p=")


def test_new_pool_with_more_errors_fails() -> None:
    result = judged(pool_answers(IDENTICAL, 1980, 20), pool_answers(IDENTICAL, 2000))
    errors = metric(result, "error_rate")
    assert errors.classification == HIGH
    assert errors.effect == pytest.approx(1.0)  # 1 % vs 0 %, in percentage points
    assert result.verdict == FAILED


def tie_corrected_p(new: list[int], legacy: list[int]) -> float:
    """The one-sided p of the normal approximation with tie correction and continuity correction,
    computed by hand from per-bucket counts (every request in a bucket ties with the others there)."""
    n1, n2 = sum(new), sum(legacy)
    n = n1 + n2
    below, rank_sum, tie_term = 0, 0.0, 0
    for a, b in zip(new, legacy, strict=True):
        t = a + b
        rank_sum += a * (below + (t + 1) / 2)
        tie_term += t**3 - t
        below += t
    u = rank_sum - n1 * (n1 + 1) / 2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    z = (u - n1 * n2 / 2 - 0.5) / sigma
    return 0.5 * math.erfc(z / math.sqrt(2))


def test_ties_in_buckets_are_ranked_together_and_the_variance_corrected() -> None:
    # Three buckets only: all but a handful of requests tie with hundreds of others.
    new = {0.01: 400.0, 0.05: 1000.0, INF: 1010.0}
    legacy = {0.01: 460.0, 0.05: 1005.0, INF: 1010.0}
    latency = metric(judged(pool_answers(new, 1010), pool_answers(legacy, 1010)), "latency")
    new_counts, legacy_counts = [400, 600, 10], [460, 545, 5]
    assert latency.p_value == pytest.approx(tie_corrected_p(new_counts, legacy_counts), rel=1e-9)
    # Ties count half in the effect size: P(new > legacy) + P(tie) / 2.
    greater = 600 * 460 + 10 * (460 + 545)
    ties = 400 * 460 + 600 * 545 + 10 * 5
    assert latency.effect == pytest.approx((greater + ties / 2) / (1010 * 1010))


def test_every_request_in_one_bucket_is_no_evidence() -> None:
    same_bucket = {0.01: 500.0, 0.05: 500.0, INF: 500.0}
    result = judged(pool_answers(same_bucket, 500), pool_answers(same_bucket, 500))
    latency = metric(result, "latency")
    assert (latency.classification, latency.p_value, latency.effect) == (PASS, 1.0, 0.5)


# --------------------------------------------------------------------------------------- no data


def test_empty_answers_are_inconclusive_and_name_the_queries() -> None:
    empty = {BUCKETS: answer([]), BY_STATUS: answer([])}
    result = judged(empty, empty)
    assert result.verdict == INCONCLUSIVE
    assert result.score is None
    assert {m.classification for m in result.metrics} == {NODATA}
    assert "no series (no such pool, or no requests in the range)" in result.summary
    assert NEW[BUCKETS] in result.summary and LEGACY[BUCKETS] in result.summary


def test_one_pool_absent_is_inconclusive_never_successful() -> None:
    absent = {BUCKETS: answer([]), BY_STATUS: answer([])}
    result = judged(pool_answers(IDENTICAL, 2000), absent)
    assert result.verdict == INCONCLUSIVE
    assert "legacy " + LEGACY[BUCKETS] + ": no series" in result.summary
    assert "new " + NEW[BUCKETS] not in result.summary
    # And the other way round: no new pool is not a pass either.
    assert judged(absent, pool_answers(IDENTICAL, 2000)).verdict == INCONCLUSIVE


def test_too_few_requests_over_the_run_is_inconclusive() -> None:
    few = {0.01: 30.0, 0.05: 40.0, INF: 40.0}
    result = judged(pool_answers(few, 40), pool_answers(IDENTICAL, 2000))
    assert result.verdict == INCONCLUSIVE
    assert "too few requests (new 40) < min_samples 100" in result.summary


def test_a_missing_inf_bucket_is_no_histogram() -> None:
    """A histogram cut short (a lost +Inf series) cannot say how many requests there were."""
    cut = {bound: count for bound, count in IDENTICAL.items() if bound != INF}
    result = judged(pool_answers(cut, 2000), pool_answers(IDENTICAL, 2000))
    assert metric(result, "latency").classification == NODATA
    assert metric(result, "error_rate").classification == PASS
    assert result.verdict == INCONCLUSIVE  # never Successful while a metric was not judged


def test_nan_in_an_answer_fails_closed() -> None:
    broken = {**IDENTICAL, 0.05: "NaN"}
    result = judged(pool_answers(broken, 2000), pool_answers(IDENTICAL, 2000))
    latency = metric(result, "latency")
    assert latency.classification == HIGH
    assert "NaN in the new pool's counts" in latency.reason
    assert result.verdict == FAILED
    result = judged(pool_answers(IDENTICAL, 2000), pool_answers(IDENTICAL, "NaN"))
    assert metric(result, "error_rate").classification == HIGH
    assert result.verdict == FAILED


def test_a_failed_query_is_inconclusive_and_named() -> None:
    failed = {
        BUCKETS: RuntimeError("GET http://p:9090/api/v1/query failed: timed out"),
        BY_STATUS: {"status": "error", "errorType": "execution", "error": "query timed out"},
    }
    result = judged(pool_answers(IDENTICAL, 2000), failed)
    assert result.verdict == INCONCLUSIVE
    assert "query failed: GET http://p:9090/api/v1/query failed: timed out" in result.summary
    assert "Prometheus query failed: execution: query timed out" in result.summary


def test_a_bucket_series_without_le_is_a_problem_not_a_crash() -> None:
    bad = {BUCKETS: answer([({}, "5")]), BY_STATUS: answer([({"status_class": "2xx"}, "5")])}
    totals = prometheus_totals(bad, LEGACY, NAMES)
    assert totals.buckets == {}
    assert "has no numeric le label" in totals.problems[LEGACY[BUCKETS]]


def test_bounds_spelled_differently_add_up() -> None:
    """Two exporters may print one bound as 0.05 and 0.050: the same bucket."""
    spelled = {BUCKETS: answer([({"le": "0.05"}, "3"), ({"le": "0.050"}, "4"), ({"le": "+Inf"}, "7")])}
    assert prometheus_totals(spelled, {BUCKETS: NEW[BUCKETS]}, NAMES).buckets == {0.05: 7.0, INF: 7.0}


# -------------------------------------------------------------------------------------- settings


def test_resolve_judge_with_prometheus_needs_both_selectors() -> None:
    legacy, new = {"pool": "legacy"}, {"pool": "new"}
    assert resolve_judge({}, None, "prometheus", (), legacy, new) == JudgeConfig()
    assert resolve_judge({}, ["http://l/metrics"], "prometheus", (), None, new) is None
    assert resolve_judge({"enabled": False}, None, "prometheus", (), legacy, new) is None
    for selectors, message in (
        ((None, new), "baseline_selector: the legacy pool's label matchers"),
        ((legacy, {}), "selector: the judge needs the new pool's label matchers"),
        ((legacy, legacy), "baseline_selector: equals selector"),
    ):
        with pytest.raises(ValueError) as refused:
            resolve_judge({"enabled": True}, None, "prometheus", (), *selectors)
        assert str(refused.value).startswith(message)
    with pytest.raises(ValueError, match="'before' needs provider=prometheus"):
        resolve_judge({"baseline_period": "before"}, ["http://l/metrics"], "web")
    with pytest.raises(ValueError, match=r"judge\.baseline_period: expected one of during, before"):
        resolve_judge({"baseline_period": "after"}, None, "prometheus", (), legacy, new)


@pytest.mark.parametrize(
    ("phase", "provider", "enabled", "period"),
    [
        ("shadow", "prometheus", False, "during"),
        ("shadow", "web", False, "during"),
        ("partial", "prometheus", True, "during"),
        ("partial", "web", True, "during"),
        ("full", "prometheus", True, "before"),
        # Legacy serves nothing during the bake and scrapes keep no history: nothing to compare with.
        ("full", "web", False, "before"),
    ],
)
def test_phase_defaults(phase: str, provider: str, enabled: bool, period: str) -> None:
    settings = phase_judge(phase, {}, provider)
    assert settings == {**JudgeConfig().to_dict(), "enabled": enabled, "baseline_period": period}


def test_phase_settings_are_checked_and_explicit_choices_win() -> None:
    assert phase_judge("shadow", {"enabled": True, "alpha": "0.01"}, "web")["alpha"] == 0.01
    assert phase_judge("partial", {"enabled": "false"}, "prometheus")["enabled"] is False
    assert phase_judge("full", {"baseline_period": "during"}, "web")["enabled"] is True
    with pytest.raises(ValueError, match="'before' needs provider=prometheus"):
        phase_judge("full", {"enabled": True}, "web")
    with pytest.raises(ValueError, match=r"judge\.enabled: expected true or false"):
        phase_judge("partial", {"enabled": "maybe"}, "web")
    with pytest.raises(ValueError, match=r"judge\.min_samples: must be a whole number"):
        phase_judge("shadow", {"enabled": False, "min_samples": 2.5}, "web")
