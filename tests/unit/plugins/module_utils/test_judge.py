"""The baseline judge: Mann-Whitney U of new vs legacy per metric, Kayenta-style score and verdict."""

import math

import numpy as np
import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.judge import (
    HIGH,
    MAX_SAMPLES,
    NODATA,
    PASS,
    JudgeConfig,
    PoolTotals,
    combine_verdicts,
    combined_message,
    common_histogram,
    interval_requests,
    judge_pools,
    mann_whitney,
    per_bucket,
    resolve_judge,
    scale_counts,
    scrape_totals,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    MetricNames,
)
from scipy.stats import norm

INF = math.inf
# router_app's buckets (router_app/metrics.py), the layout the judge sees in the rehearsal.
BOUNDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.048, 0.05,
    0.06, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, INF,
)  # fmt: skip
CONFIG = JudgeConfig()


def latencies(n: int, median: float = 0.015, sigma: float = 0.5, factor: float = 1.0) -> np.ndarray:
    """n latencies (s) at the quantiles of a log-normal: the same every run, shaped like real latency."""
    return median * factor * np.exp(sigma * norm.ppf((np.arange(n) + 0.5) / n))


def histogram(seconds: np.ndarray, bounds: tuple[float, ...] = BOUNDS) -> dict[float, float]:
    return {bound: float(np.count_nonzero(seconds <= bound)) for bound in bounds}


def pool(seconds: np.ndarray, errors: int = 0, bounds: tuple[float, ...] = BOUNDS) -> PoolTotals:
    return PoolTotals(histogram(seconds, bounds), {"2xx": float(len(seconds) - errors), "5xx": float(errors)})


def metric(result, name: str):
    return next(m for m in result.metrics if m.metric == name)


# ------------------------------------------------------------------------------------ the five verdicts


def test_identical_distributions_pass() -> None:
    result = judge_pools(pool(latencies(5000), errors=10), pool(latencies(5000), errors=10), CONFIG)
    latency, errors = metric(result, "latency"), metric(result, "error_rate")
    assert (latency.classification, errors.classification) == (PASS, PASS)
    assert latency.effect == pytest.approx(0.5)
    assert latency.p_value > 0.4
    assert (result.verdict, result.score) == (SUCCESSFUL, 100.0)
    assert result.summary.startswith("Successful (score 100 >= pass_score 95): latency Pass: p=0.5")


def test_new_fifty_percent_slower_is_high_and_fails() -> None:
    result = judge_pools(pool(latencies(5000, factor=1.5)), pool(latencies(5000)), CONFIG)
    latency = metric(result, "latency")
    assert latency.classification == HIGH
    assert latency.p_value < 1e-12
    assert latency.effect > 0.65
    assert latency.new["p95_ms"] > 1.4 * latency.legacy["p95_ms"]
    assert metric(result, "error_rate").classification == PASS
    assert (result.verdict, result.score) == (FAILED, 50.0)
    # The summary names the judged metric, its p-value and effect, and only the failing metric.
    assert result.summary.startswith("Failed (score 50 < marginal_score 75): latency High: p=")
    assert f"P(new slower than legacy)={latency.effect:.3f} > 0.55" in result.summary
    assert "error rate" not in result.summary


def test_new_faster_is_not_a_failure() -> None:
    """One-sided: an improvement is never High."""
    result = judge_pools(pool(latencies(5000, factor=0.5)), pool(latencies(5000)), CONFIG)
    assert metric(result, "latency").classification == PASS
    assert metric(result, "latency").p_value > 0.99
    assert result.verdict == SUCCESSFUL


def test_tiny_significant_shift_below_tolerance_passes() -> None:
    new, legacy = pool(latencies(50_000, factor=1.03)), pool(latencies(50_000))
    latency = metric(judge_pools(new, legacy, CONFIG), "latency")
    # Significant, but P(new slower) barely above a coin flip: not worth failing a release over.
    assert latency.p_value < CONFIG.alpha
    assert 0.5 < latency.effect <= 0.55
    assert latency.classification == PASS
    assert judge_pools(new, legacy, CONFIG).verdict == SUCCESSFUL
    # The tolerance is what lets it pass: without one the same data is High.
    strict = judge_pools(new, legacy, JudgeConfig(latency_tolerance=0))
    assert metric(strict, "latency").classification == HIGH
    assert strict.verdict == FAILED


def test_error_rate_difference_is_detected() -> None:
    same = latencies(5000)
    result = judge_pools(pool(same, errors=100), pool(same, errors=25), CONFIG)  # 2 % vs 0.5 %
    errors = metric(result, "error_rate")
    assert errors.classification == HIGH
    assert errors.p_value < 1e-6
    assert errors.effect == pytest.approx(1.5)
    assert (errors.new["error_rate"], errors.legacy["error_rate"]) == (2.0, 0.5)
    assert metric(result, "latency").classification == PASS
    assert result.verdict == FAILED
    assert "error rate High: p=" in result.summary
    assert "new 2 % vs legacy 0.5 % (+1.5 pp > 0.1 pp)" in result.summary


def test_significant_error_rate_difference_below_tolerance_passes() -> None:
    same = latencies(MAX_SAMPLES)
    result = judge_pools(pool(same, errors=280), pool(same, errors=200), CONFIG)  # 0.28 % vs 0.2 %
    errors = metric(result, "error_rate")
    assert errors.p_value < CONFIG.alpha
    assert errors.effect == pytest.approx(0.08)
    assert errors.classification == PASS


def test_a_large_difference_that_is_not_significant_passes() -> None:
    """At low volume 2 errors in 200 against none is 1 pp, far above the tolerance, but could be chance."""
    same = latencies(200)
    errors = metric(judge_pools(pool(same, errors=2), pool(same), CONFIG), "error_rate")
    assert errors.effect == pytest.approx(1.0)
    assert errors.p_value > CONFIG.alpha
    assert errors.classification == PASS


def test_too_few_samples_is_inconclusive_with_a_reason() -> None:
    result = judge_pools(pool(latencies(40, factor=3)), pool(latencies(5000)), CONFIG)
    assert [m.classification for m in result.metrics] == [NODATA, NODATA]
    assert (result.verdict, result.score) == (INCONCLUSIVE, None)
    assert result.summary == (
        "Inconclusive: too few samples: latency: too few requests (new 40) < min_samples 100; "
        "error rate: too few requests (new 40) < min_samples 100"
    )


def test_an_unreachable_baseline_is_inconclusive_and_named() -> None:
    legacy = PoolTotals(problems={"http://legacy:8080/metrics": "unreachable: connection refused"})
    result = judge_pools(pool(latencies(5000)), legacy, CONFIG)
    assert result.verdict == INCONCLUSIVE
    assert "latency: no histogram with a +Inf bucket in common" in result.summary
    assert "legacy http://legacy:8080/metrics: unreachable: connection refused" in result.summary
    assert result.to_dict()["scrape_problems"] == {
        "legacy": {"http://legacy:8080/metrics": "unreachable: connection refused"}
    }


def test_a_metric_without_data_keeps_a_passing_judge_inconclusive() -> None:
    new, legacy = pool(latencies(5000)), pool(latencies(5000))
    legacy = PoolTotals(buckets={}, by_status=legacy.by_status)  # legacy exposes no histogram
    result = judge_pools(new, legacy, CONFIG)
    assert [m.classification for m in result.metrics] == [NODATA, PASS]
    assert result.score == 100.0
    assert result.verdict == INCONCLUSIVE
    assert "but latency not judged" in result.summary


def test_a_high_metric_fails_even_when_another_has_no_data() -> None:
    new, legacy = pool(latencies(5000), errors=200), pool(latencies(5000))
    legacy = PoolTotals(buckets={}, by_status=legacy.by_status)
    assert judge_pools(new, legacy, CONFIG).verdict == FAILED


def test_marginal_score_is_inconclusive() -> None:
    config = JudgeConfig(pass_score=100, marginal_score=50)
    result = judge_pools(pool(latencies(5000, factor=1.5)), pool(latencies(5000)), config)
    assert (result.verdict, result.score) == (INCONCLUSIVE, 50.0)
    assert result.summary.startswith("Inconclusive (marginal: score 50 < pass_score 100): latency High")


# ----------------------------------------------------------------------------------------- samples


def test_large_counts_are_scaled_to_the_cap_and_still_judged() -> None:
    ten_million = 10_000_000
    new = PoolTotals(
        {b: c * 2000 for b, c in histogram(latencies(5000, factor=1.5)).items()}, {"2xx": ten_million}
    )
    legacy = PoolTotals({b: c * 2000 for b, c in histogram(latencies(5000)).items()}, {"2xx": ten_million})
    result = judge_pools(new, legacy, CONFIG)
    latency = metric(result, "latency").to_dict()
    assert latency["samples"] == {"new": MAX_SAMPLES, "legacy": MAX_SAMPLES}
    assert latency["requests"] == {"new": ten_million, "legacy": ten_million}
    assert latency["scaled"] is True
    assert latency["classification"] == HIGH


def test_scale_counts_keeps_proportions_and_total() -> None:
    assert scale_counts([1, 2, 3], cap=100) == [1, 2, 3]
    assert scale_counts([500, 300, 200], cap=10) == [5, 3, 2]
    scaled = scale_counts([1, 1, 1], cap=2)
    assert sum(scaled) == 2 and max(scaled) == 1
    assert sum(scale_counts([123_456.0, 7.0, 9_999_999.0])) == MAX_SAMPLES


def test_differing_bucket_layouts_are_compared_on_common_bounds() -> None:
    same = latencies(5000)
    coarse = (0.005, 0.01, 0.025, 0.05, 0.1, INF)
    # Compared bucket by bucket (0.015 vs 0.025 ...) these would differ; on common bounds they do not.
    result = judge_pools(pool(same), pool(same, bounds=coarse), CONFIG)
    latency = metric(result, "latency")
    assert latency.classification == PASS
    assert latency.effect == pytest.approx(0.5)
    bounds, new, legacy = common_histogram(histogram(same), histogram(same, coarse))
    assert bounds == list(coarse)
    assert new == legacy


def test_common_histogram_flattens_decreases() -> None:
    new = common_histogram({0.1: 5, 0.2: 3, INF: 9}, {0.1: 1, 0.2: 1, INF: 1})[1]
    assert new == [5, 5, 9]
    assert per_bucket(new) == [5, 0, 4]
    assert common_histogram({0.1: 1}, {0.1: 1}) is None


def test_mann_whitney_on_identical_constants_is_no_evidence() -> None:
    assert mann_whitney([0.0, 1.0], [500, 0], [300, 0]) == (1.0, 0.5)


# -------------------------------------------------------------------------------------- from scrapes


def exposition(buckets: dict[float, float], status: dict[str, float]) -> str:
    lines = ["# TYPE msgroute_request_duration_seconds histogram"]
    for bound, count in buckets.items():
        le = "+Inf" if bound == INF else repr(bound)
        lines.append(f'msgroute_request_duration_seconds_bucket{{le="{le}"}} {count}')
    lines.append("# TYPE msgroute_requests_total counter")
    lines += [f'msgroute_requests_total{{status_class="{s}"}} {n}' for s, n in status.items()]
    return "\n".join(lines) + "\n"


class Unreachable(Exception):
    cause = "connection refused"


def test_scrape_totals_add_up_over_targets_and_intervals() -> None:
    names = MetricNames()
    a0 = exposition({0.01: 10, 0.1: 20, INF: 20}, {"2xx": 20, "5xx": 0})
    a1 = exposition({0.01: 15, 0.1: 30, INF: 31}, {"2xx": 30, "5xx": 1})
    b0 = exposition({0.01: 100, 0.1: 100, INF: 100}, {"2xx": 100})
    b1 = exposition({0.01: 4, 0.1: 5, INF: 5}, {"2xx": 5})  # restarted: counts from zero
    first = scrape_totals({"a": a0, "b": b0}, {"a": a1, "b": b1}, names)
    assert first.buckets == {0.01: 5 + 4, 0.1: 10 + 5, INF: 11 + 5}
    assert first.by_status == {"2xx": 10 + 5, "5xx": 1}
    # Next interval: b unreachable, a had no baseline scrape (its previous one failed).
    second = scrape_totals({"a": Unreachable(), "b": b1}, {"a": a1, "b": Unreachable()}, names)
    assert second.buckets == {}
    assert second.problems == {"b": "unreachable: connection refused"}
    total = first + second
    assert total.buckets == first.buckets
    assert total.problems == {"b": "unreachable: connection refused"}


def test_interval_requests_count_a_pool_only_when_every_target_answered_both_scrapes() -> None:
    names = MetricNames()
    a0 = exposition({0.1: 20, INF: 20}, {"2xx": 20, "5xx": 0})
    a1 = exposition({0.1: 30, INF: 31}, {"2xx": 30, "5xx": 1})
    b0, b1 = exposition({0.1: 100, INF: 100}, {"2xx": 100}), exposition({0.1: 140, INF: 140}, {"2xx": 140})
    before, after = {"a": a0, "b": b0}, {"a": a1, "b": b1}
    assert interval_requests(before, after, scrape_totals(before, after, names)) == 11 + 40
    # b's requests of this interval would be counted at a later one: this interval's count is unknown.
    for before, after in (
        ({"a": a0, "b": b0}, {"a": a1, "b": Unreachable()}),
        ({"a": a0}, {"a": a1, "b": b1}),
    ):
        assert interval_requests(before, after, scrape_totals(before, after, names)) is None
    assert interval_requests({}, {}, PoolTotals()) is None


def test_unparseable_scrape_is_a_problem_not_a_crash() -> None:
    good = exposition({0.1: 1, INF: 1}, {"2xx": 1})
    totals = scrape_totals({"a": good}, {"a": "this is { not metrics"}, MetricNames())
    assert "not Prometheus text exposition" in totals.problems["a"]


# ------------------------------------------------------------------------------------------- inputs


def test_resolve_judge_is_on_with_a_baseline_unless_switched_off() -> None:
    legacy = ["http://legacy:8080/metrics"]
    assert resolve_judge({}, None, "web") is None
    assert resolve_judge({"enabled": None}, legacy, "web") == JudgeConfig()
    assert resolve_judge({"enabled": False}, legacy, "web") is None
    config = resolve_judge({"enabled": True, "alpha": "0.01", "min_samples": 500.0}, legacy, "web")
    assert (config.alpha, config.min_samples) == (0.01, 500)


@pytest.mark.parametrize(
    ("options", "baseline", "provider", "message"),
    [
        ({"enabled": True}, None, "web", "baseline_targets: at least one legacy /metrics URL"),
        ({"enabled": True}, ["http://l/metrics"], "prometheus", "baseline_selector: the legacy pool's label"),
        ({}, ["http://new/metrics"], "web", "baseline_targets: http://new/metrics is also in targets"),
        ({"alpha": 0}, ["http://l/metrics"], "web", "judge.alpha: must be in (0, 1), got 0"),
        ({"alpha": True}, ["http://l/metrics"], "web", "judge.alpha: expected a number"),
        (
            {"marginal_score": 96},
            ["http://l/metrics"],
            "web",
            "judge.marginal_score: 96 is above pass_score 95",
        ),
        (
            {"latency_tolerance": 0.5},
            ["http://l/metrics"],
            "web",
            "judge.latency_tolerance: must be in [0, 0.5)",
        ),
        ({"min_samples": 2.5}, ["http://l/metrics"], "web", "judge.min_samples: must be a whole number"),
        ({"beta": 1}, ["http://l/metrics"], "web", "judge.beta: unknown field"),
    ],
)
def test_resolve_judge_refuses_bad_input(options, baseline, provider, message) -> None:
    with pytest.raises(ValueError) as refused:
        resolve_judge(options, baseline, provider, ["http://new/metrics"])
    assert str(refused.value).startswith(message)


# ------------------------------------------------------------------------------------------ verdicts


@pytest.mark.parametrize(
    ("analysis", "judge", "combined"),
    [
        (SUCCESSFUL, SUCCESSFUL, SUCCESSFUL),
        (SUCCESSFUL, FAILED, FAILED),
        (FAILED, SUCCESSFUL, FAILED),
        (SUCCESSFUL, INCONCLUSIVE, INCONCLUSIVE),
        (INCONCLUSIVE, FAILED, FAILED),
        (ERROR, SUCCESSFUL, ERROR),
        (ERROR, FAILED, FAILED),
        (ERROR, INCONCLUSIVE, ERROR),
    ],
)
def test_either_side_failing_fails_the_run(analysis: str, judge: str, combined: str) -> None:
    assert combine_verdicts(analysis, judge) == combined


def test_message_leads_with_the_deciding_side() -> None:
    failed = judge_pools(pool(latencies(5000, factor=1.5)), pool(latencies(5000)), CONFIG)
    passed = judge_pools(pool(latencies(5000)), pool(latencies(5000)), CONFIG)
    ok = "Successful: 3 of 3 measurements successful"
    assert combined_message(SUCCESSFUL, ok, failed).startswith(
        "Failed: baseline judge Failed (score 50 < marginal_score 75): latency High: p="
    )
    assert combined_message(SUCCESSFUL, ok, failed).endswith(f"; analysis {ok}")
    assert combined_message(SUCCESSFUL, ok, passed) == f"{ok}; baseline judge {passed.summary}"
    bad = "Failed: failed (1) > failure_limit (0); measurement 1/1: p95 latency 75 ms > threshold 48 ms"
    assert combined_message(FAILED, bad, failed).startswith(bad + "; baseline judge Failed")


def test_result_is_json_friendly() -> None:
    result = judge_pools(pool(latencies(5000, factor=1.5), errors=3), pool(latencies(5000)), CONFIG).to_dict()
    assert result["verdict"] == FAILED
    assert set(result["metrics"]) == {"latency", "error_rate"}
    latency = result["metrics"]["latency"]
    # Tiny p-values keep their significant digits instead of rounding to 0.
    assert 0 < latency["p_value"] < 1e-12
    assert latency["samples"] == {"new": 5000, "legacy": 5000}
    assert latency["scaled"] is False
    assert result["settings"]["alpha"] == 0.05
