"""The gate's decisions: thresholds, one measurement, PromQL, and Argo Rollouts run semantics."""

import json
import math

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.analysis import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    MIB,
    PHASE_DEFAULTS,
    RUNNING,
    SUCCESSFUL,
    AnalysisRun,
    Measurement,
    MetricNames,
    PrometheusQueryError,
    Thresholds,
    assess,
    default_window,
    error_measurement,
    evaluate_run,
    measure_from_prometheus,
    measure_from_scrapes,
    parse_prometheus_vector,
    prometheus_queries,
    resolve_thresholds,
    should_stop,
)

INF = math.inf
PARTIAL = PHASE_DEFAULTS["partial"]


def exposition(
    buckets: dict[float, float],
    live: dict[str, float],
    mirrored: dict[str, float] | None = None,
    memory_bytes: float | None = 50 * MIB,
    breakers: dict[str, float] | None = None,
    histogram: str = "msgroute_request_duration_seconds",
    counter: str = "msgroute_requests_total",
) -> str:
    """Router-shaped /metrics text from cumulative buckets and per-status request counts."""
    lines = [f"# TYPE {histogram} histogram"]
    for bound, count in buckets.items():
        le = "+Inf" if bound == INF else repr(bound)
        lines.append(f'{histogram}_bucket{{le="{le}"}} {count}')
    lines.append(f"# TYPE {counter} counter")
    for flag, counts in (("false", live), ("true", mirrored or {})):
        for status, count in counts.items():
            lines.append(f'{counter}{{mirrored="{flag}",status_class="{status}"}} {count}')
    if memory_bytes is not None:
        lines.append(f"process_resident_memory_bytes {memory_bytes}")
    for destination, state in (breakers or {}).items():
        lines.append(f'msgroute_breaker_state{{destination="{destination}"}} {state}')
    return "\n".join(lines) + "\n"


def ok(**overrides: object) -> Measurement:
    values = {"requests": 500.0, "p95_ms": 30.0, "success_rate": 99.9, "memory_mb": 60.0}
    values.update(overrides)
    return assess(PARTIAL, **values)


def failed_p95() -> Measurement:
    return ok(p95_ms=83.1)


def inconclusive() -> Measurement:
    return ok(requests=3)


def errored() -> Measurement:
    return error_measurement(["target http://r1:8080/metrics unreachable: connection refused"])


# ------------------------------------------------------------------------------------------ thresholds


def test_phase_defaults_are_the_design_figures() -> None:
    figures = {
        phase: (t.max_p95_ms, t.min_success_rate, t.max_memory_mb) for phase, t in PHASE_DEFAULTS.items()
    }
    assert figures == {"shadow": (45, 98.5, 128), "partial": (48, 99.0, 128), "full": (50, 99.13, 128)}


def test_overrides_merge_over_phase_defaults() -> None:
    merged = resolve_thresholds("full", {"max_p95_ms": "40", "min_requests": 5, "no_data": "fail"})
    assert (merged.max_p95_ms, merged.min_success_rate, merged.min_requests, merged.no_data) == (
        40.0,
        99.13,
        5,
        "fail",
    )


def test_explicit_null_switches_memory_check_off() -> None:
    assert resolve_thresholds("shadow", {"max_memory_mb": None}).max_memory_mb is None


@pytest.mark.parametrize(
    ("phase", "overrides", "field"),
    [
        ("canary", {}, "phase"),
        ("partial", {"max_p95": 10}, "thresholds.max_p95"),
        ("partial", {"max_p95_ms": "fast"}, "thresholds.max_p95_ms"),
        ("partial", {"max_p95_ms": 0}, "thresholds.max_p95_ms"),
        ("partial", {"max_p95_ms": True}, "thresholds.max_p95_ms"),
        ("partial", {"min_success_rate": 101}, "thresholds.min_success_rate"),
        ("partial", {"min_success_rate": None}, "thresholds.min_success_rate"),
        ("partial", {"max_memory_mb": -1}, "thresholds.max_memory_mb"),
        ("partial", {"min_requests": 2.5}, "thresholds.min_requests"),
        ("partial", {"no_data": "ignore"}, "thresholds.no_data"),
        ("partial", {"max_open_breakers": -1}, "thresholds.max_open_breakers"),
    ],
)
def test_bad_phase_or_threshold_names_the_field(phase: str, overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        resolve_thresholds(phase, overrides)


def test_default_window_never_below_a_minute() -> None:
    assert default_window(10) == "60s"
    assert default_window(90.2) == "91s"


# -------------------------------------------------------------------------------------- one measurement


def test_within_thresholds_is_successful() -> None:
    measurement = ok()
    assert (measurement.verdict, measurement.reasons) == (SUCCESSFUL, [])


def test_p95_breach_names_metric_threshold_and_value() -> None:
    measurement = failed_p95()
    assert measurement.verdict == FAILED
    assert measurement.reasons == ["p95 latency 83.1 ms > threshold 48 ms"]


def test_success_rate_breach() -> None:
    measurement = ok(success_rate=97.5)
    assert measurement.reasons == ["success rate 97.5 % < threshold 99 %"]


def test_values_at_the_threshold_pass() -> None:
    assert ok(p95_ms=48.0, success_rate=99.0, memory_mb=128.0).verdict == SUCCESSFUL


def test_near_miss_is_printed_with_enough_digits() -> None:
    # 98.99999 rounds to 99 at three decimals; the message must still show why it failed.
    assert ok(success_rate=98.99999).reasons == ["success rate 98.99999 % < threshold 99 %"]


def test_memory_breach_fails_even_at_low_volume() -> None:
    measurement = ok(requests=2, memory_mb=150.25)
    assert measurement.verdict == FAILED
    assert measurement.reasons[0] == "memory 150.25 MB > threshold 128 MB"
    assert "request volume 2 < minimum 20 requests" in measurement.reasons


def test_low_volume_is_inconclusive_and_latency_not_judged() -> None:
    measurement = ok(requests=3, p95_ms=500.0)
    assert measurement.verdict == INCONCLUSIVE
    assert measurement.reasons == ["request volume 3 < minimum 20 requests"]


@pytest.mark.parametrize(
    ("policy", "verdict"), [("inconclusive", INCONCLUSIVE), ("fail", FAILED), ("pass", SUCCESSFUL)]
)
def test_no_data_policy(policy: str, verdict: str) -> None:
    thresholds = resolve_thresholds("partial", {"no_data": policy})
    measurement = assess(thresholds, requests=100, p95_ms=None, success_rate=99.9, memory_mb=10)
    assert measurement.verdict == verdict
    if policy != "pass":
        assert "no data for p95 latency" in measurement.reasons[0]


def test_open_breakers_fail_only_when_gated() -> None:
    gated = Thresholds(max_p95_ms=48, min_success_rate=99, max_open_breakers=0)
    assert assess(gated, requests=100, p95_ms=1, success_rate=100, breaker_open=1).reasons == [
        "open breakers 1 > threshold 0"
    ]
    assert ok(breaker_open=3).verdict == SUCCESSFUL  # phase defaults record breakers, do not gate them


# ------------------------------------------------------------------------------------- scrape deltas

BEFORE_BUCKETS = {0.045: 100, 0.048: 100, 0.05: 100, 0.1: 100, INF: 100}


def test_measurement_is_the_delta_between_scrapes() -> None:
    before = {"r1": exposition(BEFORE_BUCKETS, {"2xx": 100})}
    # 100 new requests: 90 <= 45 ms, 9 in (48, 50], 1 in (50, 100] ms.
    after = {"r1": exposition({0.045: 190, 0.048: 190, 0.05: 199, 0.1: 200, INF: 200}, {"2xx": 200})}
    measurement = measure_from_scrapes(before, after, PARTIAL)
    # rank 95 in (0.048, 0.05]: 0.048 + 0.002 * (95 - 90) / 9
    assert measurement.p95_ms == pytest.approx((0.048 + 0.002 * 5 / 9) * 1000)
    assert measurement.requests == 100
    # 49.111 ms is over the partial phase's 48 ms.
    assert measurement.reasons == ["p95 latency 49.111 ms > threshold 48 ms"]


def test_targets_are_aggregated_before_the_quantile() -> None:
    empty = {0.045: 0, 0.048: 0, 0.05: 0, 0.1: 0, INF: 0}
    before = {"a": exposition(empty, {}), "b": exposition(empty, {})}
    after = {
        "a": exposition({0.045: 100, 0.048: 100, 0.05: 100, 0.1: 100, INF: 100}, {"2xx": 100}),
        "b": exposition({0.045: 0, 0.048: 0, 0.05: 0, 0.1: 10, INF: 10}, {"2xx": 10}),
    }
    measurement = measure_from_scrapes(before, after, PARTIAL)
    # Pooled: 110 requests, rank 104.5 in (0.05, 0.1] holding 10 -> 0.05 + 0.05 * 4.5 / 10 = 72.5 ms.
    # (Averaging per-target p95s would say 70.125 ms, the worst target 97.5 ms.)
    assert measurement.p95_ms == pytest.approx(72.5)
    assert measurement.reasons == ["p95 latency 72.5 ms > threshold 48 ms"]


def test_success_rate_counts_mirrored_and_live_requests() -> None:
    before = {"r1": exposition(BEFORE_BUCKETS, {"2xx": 0}, {"2xx": 0})}
    after = {
        "r1": exposition(
            {0.045: 1100, 0.048: 1100, 0.05: 1100, 0.1: 1100, INF: 1100},
            {"2xx": 900, "4xx": 10, "5xx": 6},
            {"2xx": 80, "5xx": 4},
        )
    }
    measurement = measure_from_scrapes(before, after, PARTIAL)
    # 1000 requests, 10 of them 5xx (4xx is the client's fault, not the router's).
    assert measurement.requests == 1000
    assert measurement.success_rate == pytest.approx(99.0)
    assert measurement.verdict == SUCCESSFUL


def test_restarted_target_counts_from_zero() -> None:
    before = {"r1": exposition({0.045: 5000, 0.048: 5000, 0.05: 5000, 0.1: 5000, INF: 5000}, {"2xx": 5000})}
    after = {"r1": exposition({0.045: 40, 0.048: 40, 0.05: 40, 0.1: 40, INF: 40}, {"2xx": 38, "5xx": 2})}
    measurement = measure_from_scrapes(before, after, PARTIAL)
    assert measurement.requests == 40
    assert measurement.success_rate == pytest.approx(95.0)
    assert measurement.reasons == ["success rate 95 % < threshold 99 %"]


def test_memory_is_the_largest_target_and_breakers_are_counted() -> None:
    before = {
        "a": exposition(BEFORE_BUCKETS, {"2xx": 100}),
        "b": exposition(BEFORE_BUCKETS, {"2xx": 100}),
    }
    grown = {0.045: 200, 0.048: 200, 0.05: 200, 0.1: 200, INF: 200}
    after = {
        "a": exposition(grown, {"2xx": 200}, memory_bytes=100 * MIB, breakers={"orders": 2, "billing": 1}),
        "b": exposition(grown, {"2xx": 200}, memory_bytes=130 * MIB, breakers={"orders": 2}),
    }
    measurement = measure_from_scrapes(before, after, PARTIAL)
    assert measurement.memory_mb == pytest.approx(130)
    assert measurement.breaker_open == 2
    assert measurement.reasons == ["memory 130 MB > threshold 128 MB"]


def test_unreachable_target_makes_an_error_measurement() -> None:
    text = exposition(BEFORE_BUCKETS, {"2xx": 100})
    measurement = measure_from_scrapes(
        {"a": text, "b": text}, {"a": text, "b": ConnectionRefusedError("connection refused")}, PARTIAL
    )
    assert measurement.verdict == ERROR
    assert measurement.reasons == ["target b unreachable: connection refused"]


def test_failed_baseline_and_garbage_are_errors_too() -> None:
    text = exposition(BEFORE_BUCKETS, {"2xx": 100})
    no_baseline = measure_from_scrapes({"a": OSError("timed out")}, {"a": text}, PARTIAL)
    assert no_baseline.verdict == ERROR
    assert "no baseline scrape (previous scrape failed: timed out)" in no_baseline.reasons[0]
    garbage = measure_from_scrapes({"a": text}, {"a": "<html>oops</html>"}, PARTIAL)
    assert garbage.verdict == ERROR
    assert garbage.reasons[0].startswith("target a: not Prometheus text exposition")


def test_metric_names_and_failure_classes_are_configurable() -> None:
    names = MetricNames(histogram="rt_seconds", requests="rt_requests_total", failure_classes=("5xx", "4xx"))
    before = {
        "a": exposition(BEFORE_BUCKETS, {"2xx": 0}, histogram="rt_seconds", counter="rt_requests_total")
    }
    after = {
        "a": exposition(
            {0.045: 200, 0.048: 200, 0.05: 200, 0.1: 200, INF: 200},
            {"2xx": 96, "4xx": 4},
            histogram="rt_seconds",
            counter="rt_requests_total",
        )
    }
    measurement = measure_from_scrapes(before, after, PARTIAL, names)
    assert measurement.success_rate == pytest.approx(96.0)
    assert measurement.p95_ms == pytest.approx(0.045 * 95 / 100 * 1000)


def test_bad_metric_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"metric_names\.histogram"):
        MetricNames(histogram="bad name")
    with pytest.raises(ValueError, match=r"metric_names\.failure_classes"):
        MetricNames(failure_classes=())


# ---------------------------------------------------------------------------------------- prometheus


def test_promql_queries() -> None:
    queries = prometheus_queries({"job": "router", "track": "new"}, "2m")
    sel = 'job="router",track="new"'
    assert queries == {
        "p95": (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(msgroute_request_duration_seconds_bucket{{{sel}}}[2m])))"
        ),
        "success": (
            f'(sum(rate(msgroute_requests_total{{{sel},status_class!~"5xx"}}[2m])) or vector(0))'
            f" / sum(rate(msgroute_requests_total{{{sel}}}[2m]))"
        ),
        "requests": f"sum(increase(msgroute_requests_total{{{sel}}}[2m]))",
        "memory": f"max(process_resident_memory_bytes{{{sel}}})",
        "breaker": f"max(msgroute_breaker_state{{{sel}}})",
    }


def test_promql_without_selector_or_breaker() -> None:
    queries = prometheus_queries({}, "60s", MetricNames(breaker=None, failure_classes=("5xx", "4xx")))
    assert "breaker" not in queries
    assert queries["memory"] == "max(process_resident_memory_bytes)"
    assert 'msgroute_requests_total{status_class!~"5xx|4xx"}[60s]' in queries["success"]


def test_promql_escapes_label_values_and_refuses_bad_input() -> None:
    assert 'msgroute_breaker_state{job="a\\"b"}' in prometheus_queries({"job": 'a"b'}, "1m")["breaker"]
    with pytest.raises(ValueError, match="selector"):
        prometheus_queries({"bad-label": "x"}, "1m")
    with pytest.raises(ValueError, match="window"):
        prometheus_queries({}, "10 minutes")


def vector(*values: str) -> dict:
    result = [{"metric": {}, "value": [1700000000.0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_parse_prometheus_vector() -> None:
    assert parse_prometheus_vector(vector("0.0421")) == pytest.approx(0.0421)
    assert parse_prometheus_vector(json.dumps(vector("12"))) == 12.0
    assert parse_prometheus_vector(vector()) is None
    assert parse_prometheus_vector(vector("NaN")) is None
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}
    assert parse_prometheus_vector(scalar) == 3.0


def test_prometheus_errors_are_clear() -> None:
    answer = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    with pytest.raises(PrometheusQueryError, match='bad_data: parse error: unexpected "}"'):
        parse_prometheus_vector(answer)
    with pytest.raises(PrometheusQueryError, match="expected one series, got 2"):
        parse_prometheus_vector(vector("1", "2"))
    with pytest.raises(PrometheusQueryError, match="not JSON"):
        parse_prometheus_vector("<html>")


def test_measure_from_prometheus_converts_units() -> None:
    results = {"p95": 0.0521, "success": 0.995, "requests": 800.0, "memory": 64 * MIB, "breaker": 2.0}
    measurement = measure_from_prometheus(results, PARTIAL)
    assert measurement.p95_ms == pytest.approx(52.1)
    assert measurement.success_rate == pytest.approx(99.5)
    assert measurement.memory_mb == pytest.approx(64)
    assert measurement.breaker_open == 1
    assert measurement.reasons == ["p95 latency 52.1 ms > threshold 48 ms"]


def test_prometheus_without_traffic_is_inconclusive() -> None:
    results = {"p95": None, "success": None, "requests": None, "memory": 30 * MIB, "breaker": None}
    measurement = measure_from_prometheus(results, PARTIAL)
    assert measurement.verdict == INCONCLUSIVE
    assert measurement.reasons == ["request volume 0 < minimum 20 requests"]


# ----------------------------------------------------------------------------------------------- runs


def test_all_successful_run() -> None:
    result = evaluate_run([ok(), ok(p95_ms=41.2), ok()], AnalysisRun(count=3))
    assert result.verdict == SUCCESSFUL
    assert result.message == (
        "Successful: 3 of 3 measurements successful; worst p95 latency 41.2 ms, worst success rate 99.9 %, "
        "peak memory 60 MB"
    )


def test_one_failure_fails_by_default_and_names_the_breach() -> None:
    result = evaluate_run([ok(), failed_p95()], AnalysisRun(count=3))
    assert result.verdict == FAILED
    assert result.message == (
        "Failed: failed (1) > failure_limit (0); measurement 2/2: p95 latency 83.1 ms > threshold 48 ms"
    )
    assert (result.count, result.failed, result.successful) == (2, 1, 1)


def test_failure_limit_tolerates_failures() -> None:
    run = AnalysisRun(count=3, failure_limit=1)
    assert evaluate_run([failed_p95(), ok(), ok()], run).verdict == SUCCESSFUL
    result = evaluate_run([failed_p95(), ok(), ok(success_rate=90.0)], run)
    assert result.verdict == FAILED
    assert "measurement 1/3: p95 latency 83.1 ms > threshold 48 ms" in result.message
    assert "measurement 3/3: success rate 90 % < threshold 99 %" in result.message


def test_inconclusive_limit() -> None:
    result = evaluate_run([ok(), inconclusive()], AnalysisRun(count=3))
    assert result.verdict == INCONCLUSIVE
    assert result.message == (
        "Inconclusive: inconclusive (1) > inconclusive_limit (0); "
        "measurement 2/2: request volume 3 < minimum 20 requests"
    )
    assert evaluate_run([ok(), inconclusive(), ok()], AnalysisRun(count=3, inconclusive_limit=1)).verdict == (
        SUCCESSFUL
    )


def test_errors_are_retried_not_counted() -> None:
    run = AnalysisRun(count=3)
    result = evaluate_run([errored(), ok(), errored(), errored(), ok(), ok()], run)
    assert result.verdict == SUCCESSFUL
    assert (result.count, result.errors) == (3, 3)
    assert evaluate_run([errored(), ok(), errored()], run).verdict == RUNNING


def test_consecutive_errors_over_limit_is_error() -> None:
    run = AnalysisRun(count=3)  # consecutive_error_limit defaults to 4, as in Argo Rollouts
    assert evaluate_run([errored()] * 4, run).verdict == RUNNING
    result = evaluate_run([errored()] * 5, run)
    assert result.verdict == ERROR
    assert result.message == (
        "Error: consecutive errors (5) > consecutive_error_limit (4); "
        "measurement 5/5: target http://r1:8080/metrics unreachable: connection refused"
    )
    assert evaluate_run([errored()] * 2, AnalysisRun(count=3, consecutive_error_limit=1)).verdict == ERROR


def test_consecutive_success_limit_stops_early() -> None:
    run = AnalysisRun(count=10, consecutive_success_limit=2, failure_limit=3)
    result = evaluate_run([ok(), failed_p95(), ok(), ok()], run)
    assert result.verdict == SUCCESSFUL
    assert result.message.startswith("Successful: consecutive successes (2) reached")
    assert len(result.history) == 4


def test_count_reached_without_success_streak() -> None:
    run = AnalysisRun(count=3, consecutive_success_limit=2, failure_limit=2)
    assert evaluate_run([ok(), failed_p95(), ok()], run).verdict == INCONCLUSIVE
    no_failure_limit = AnalysisRun(count=3, consecutive_success_limit=2, failure_limit=-1)
    result = evaluate_run([ok(), failed_p95(), ok()], no_failure_limit)
    assert result.verdict == FAILED
    assert "p95 latency 83.1 ms > threshold 48 ms" in result.message


def test_tolerated_bad_measurements_alone_never_pass() -> None:
    run = AnalysisRun(count=2, failure_limit=5)
    result = evaluate_run([failed_p95(), failed_p95()], run)
    assert result.verdict == INCONCLUSIVE
    assert "without a single successful measurement" in result.message


def test_decision_ignores_later_measurements() -> None:
    result = evaluate_run([failed_p95(), ok(), ok()], AnalysisRun(count=3))
    assert result.verdict == FAILED
    assert len(result.history) == 1


def test_should_stop_as_soon_as_decided() -> None:
    run = AnalysisRun(count=3)
    assert not should_stop([], run)
    assert not should_stop([ok(), ok()], run)
    assert should_stop([ok(), ok(), ok()], run)
    assert should_stop([failed_p95()], run)
    assert should_stop([inconclusive()], run)


def test_history_is_json_serialisable() -> None:
    measurement = failed_p95()
    measurement.started_at, measurement.finished_at = 1700000000.0, 1700000010.25
    result = evaluate_run([measurement], AnalysisRun(count=1))
    decoded = json.loads(json.dumps(result.to_dict()))
    assert decoded["history"][0] == {
        "verdict": "Failed",
        "reasons": ["p95 latency 83.1 ms > threshold 48 ms"],
        "requests": 500,
        "p95_ms": 83.1,
        "success_rate": 99.9,
        "memory_mb": 60,
        "breaker_open": None,
        "started_at": "2023-11-14T22:13:20.000+00:00",
        "finished_at": "2023-11-14T22:13:30.250+00:00",
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"count": 0}, "count"),
        ({"failure_limit": -2}, "failure_limit"),
        ({"failure_limit": -1}, "failure_limit"),
        ({"consecutive_error_limit": -1}, "consecutive_error_limit"),
        ({"count": 2, "consecutive_success_limit": 3}, "consecutive_success_limit"),
        ({"interval": -1}, "interval"),
        ({"initial_delay": math.inf}, "initial_delay"),
    ],
)
def test_bad_run_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        AnalysisRun(**kwargs)
