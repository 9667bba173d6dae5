"""A NaN gate input is never within a threshold: every input fails closed, whatever else it says."""

from __future__ import annotations

import math

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.histogram import histogram_quantile
from ansible_collections.msgroute.rollout.plugins.module_utils.judge import (
    HIGH,
    JudgeConfig,
    PoolTotals,
    judge_pools,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    FAILED,
    Measurement,
    assess,
    measure_from_scrapes,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.prometheus import measure_from_prometheus
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import (
    Thresholds,
    resolve_thresholds,
)
from gate_samples import INF, MIB, PARTIAL, exposition, ok

NAN = math.nan
GATED_BREAKERS = resolve_thresholds("partial", {"max_open_breakers": 0})


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"p95_ms": NAN}, "p95 latency is NaN (not a number), never within threshold 48 ms"),
        ({"success_rate": NAN}, "success rate is NaN (not a number), never within threshold 99 %"),
        ({"memory_mb": NAN}, "memory is NaN (not a number), never within threshold 128 MB"),
        (
            {"requests": NAN},
            "request volume is NaN (not a number), never within threshold minimum 20 requests",
        ),
    ],
)
def test_each_nan_input_fails_the_measurement(values: dict, reason: str) -> None:
    measurement = ok(**values)
    assert measurement.verdict == FAILED
    assert any(r.startswith(reason) for r in measurement.reasons)


def test_nan_breakers_fail_when_breakers_are_gated() -> None:
    measurement = ok(breaker_open=NAN)
    assert measurement.verdict == "Successful"  # breakers not gated by default: nothing to compare
    gated = measurement_with(GATED_BREAKERS, breaker_open=NAN)
    assert gated.verdict == FAILED
    assert gated.reasons == ["open breakers is NaN (not a number), never within threshold 0"]


def measurement_with(thresholds: Thresholds, **overrides: float | None) -> Measurement:
    values: dict[str, float | None] = {
        "requests": 500.0,
        "p95_ms": 30.0,
        "success_rate": 99.9,
        "memory_mb": 60.0,
    }
    values.update(overrides)
    return assess(thresholds, **values)


def test_nan_is_failed_even_when_missing_data_would_pass() -> None:
    lenient = resolve_thresholds("partial", {"no_data": "pass"})
    assert measurement_with(lenient, p95_ms=None).verdict == "Successful"
    assert measurement_with(lenient, p95_ms=NAN).verdict == FAILED


def test_nan_request_volume_below_nothing_is_not_low_volume() -> None:
    # NaN < min_requests is False, so a NaN volume once skipped the volume check and judged nothing.
    measurement = ok(requests=NAN, p95_ms=30.0)
    assert measurement.verdict == FAILED
    assert not any("request volume" in r and "< minimum" in r for r in measurement.reasons)


@pytest.mark.parametrize(
    "buckets",
    [
        {0.045: 90.0, 0.048: NAN, 0.05: 99.0, INF: 100.0},
        {0.045: 90.0, 0.048: 95.0, 0.05: 99.0, INF: NAN},
        {0.045: NAN, 0.048: NAN, 0.05: NAN, INF: NAN},
    ],
)
def test_histogram_quantile_is_nan_whenever_a_count_is_nan(buckets: dict) -> None:
    # Before, some layouts answered a number (the highest finite bound, or an interpolation).
    assert math.isnan(histogram_quantile(0.95, buckets))


def test_nan_bucket_in_a_scrape_fails_the_measurement() -> None:
    before = exposition({0.045: 0, 0.048: 0, 0.05: 0, INF: 0}, {"2xx": 0})
    after = exposition({0.045: 400, 0.048: "NaN", 0.05: 499, INF: 500}, {"2xx": 500})
    measurement = measure_from_scrapes({"a": before}, {"a": after}, PARTIAL)
    assert measurement.verdict == FAILED
    assert any(r.startswith("p95 latency is NaN") for r in measurement.reasons)


def test_nan_request_counter_in_a_scrape_fails_the_measurement() -> None:
    buckets = {0.045: 500, 0.048: 500, 0.05: 500, INF: 500}
    before = exposition({b: 0 for b in buckets}, {"2xx": 0, "5xx": 0})
    after = exposition(buckets, {"2xx": 500, "5xx": "NaN"})
    measurement = measure_from_scrapes({"a": before}, {"a": after}, PARTIAL)
    assert measurement.verdict == FAILED
    assert any(r.startswith("success rate is NaN") for r in measurement.reasons)
    assert any(r.startswith("request volume is NaN") for r in measurement.reasons)


def test_nan_memory_of_one_target_is_not_hidden_by_another() -> None:
    buckets = {0.045: 500, 0.048: 500, 0.05: 500, INF: 500}
    before = exposition({b: 0 for b in buckets}, {"2xx": 0})
    sick = exposition(buckets, {"2xx": 500}, memory_bytes="NaN")
    healthy = exposition(buckets, {"2xx": 500}, memory_bytes=60 * MIB)
    measurement = measure_from_scrapes({"a": before, "b": before}, {"a": sick, "b": healthy}, PARTIAL)
    assert measurement.verdict == FAILED
    assert any(r.startswith("memory is NaN") for r in measurement.reasons)


def test_nan_breaker_gauge_in_a_scrape_counts_as_open() -> None:
    buckets = {0.045: 500, 0.048: 500, 0.05: 500, INF: 500}
    before = exposition({b: 0 for b in buckets}, {"2xx": 0})
    after = exposition(buckets, {"2xx": 500}, breakers={"billing": "NaN", "search": 0})
    measurement = measure_from_scrapes({"a": before}, {"a": after}, GATED_BREAKERS)
    assert measurement.breaker_open == 1
    assert measurement.verdict == FAILED


@pytest.mark.parametrize("key", ["p95", "success", "requests", "memory"])
def test_nan_handed_to_the_prometheus_provider_fails(key: str) -> None:
    results = {"p95": 0.03, "success": 0.999, "requests": 800.0, "memory": 64 * MIB, "breaker": 0.0}
    results[key] = NAN
    assert measure_from_prometheus(results, PARTIAL).verdict == FAILED


def test_nan_breaker_handed_to_the_prometheus_provider_fails_when_gated() -> None:
    results = {"p95": 0.03, "success": 0.999, "requests": 800.0, "memory": 64 * MIB, "breaker": NAN}
    assert measure_from_prometheus(results, GATED_BREAKERS).verdict == FAILED


@pytest.mark.parametrize("pool", ["new", "legacy"])
def test_nan_counts_make_the_judged_metric_high(pool: str) -> None:
    good = PoolTotals(buckets={0.01: 900.0, 0.05: 1000.0, INF: 1000.0}, by_status={"2xx": 1000.0})
    broken = PoolTotals(buckets={0.01: NAN, 0.05: 1000.0, INF: 1000.0}, by_status={"2xx": NAN})
    new, legacy = (broken, good) if pool == "new" else (good, broken)
    result = judge_pools(new, legacy, JudgeConfig())
    assert {m.metric: m.classification for m in result.metrics} == {"latency": HIGH, "error_rate": HIGH}
    assert result.verdict == FAILED
    assert f"NaN in the {pool} pool's counts" in result.summary


@pytest.mark.parametrize(
    "field", ["alpha", "pass_score", "marginal_score", "latency_tolerance", "min_samples"]
)
def test_nan_judge_settings_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=rf"^judge\.{field}: must be in"):
        JudgeConfig(**{field: NAN})
