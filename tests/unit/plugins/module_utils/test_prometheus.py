"""The Prometheus provider: PromQL of one measurement, and its answers turned into a measurement."""

import json

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import INCONCLUSIVE, MetricNames
from ansible_collections.msgroute.rollout.plugins.module_utils.prometheus import (
    PrometheusQueryError,
    default_window,
    measure_from_prometheus,
    parse_prometheus_vector,
    prometheus_queries,
)
from gate_samples import MIB, PARTIAL


def test_default_window_never_below_a_minute() -> None:
    assert default_window(10) == "60s"
    assert default_window(90.2) == "91s"


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
