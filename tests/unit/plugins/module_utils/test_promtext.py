"""The metrics parser against text shaped like the router's ``/metrics`` (prometheus_client output)."""

import math
import os
import subprocess
import sys
import textwrap

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.promtext import (
    MetricsParseError,
    counter_series,
    gauge_value,
    gauge_values,
    histogram_buckets,
    parse_samples,
    sum_by_label,
)

ROUTER_TEXT = """\
# HELP msgroute_request_duration_seconds Request duration
# TYPE msgroute_request_duration_seconds histogram
msgroute_request_duration_seconds_bucket{le="0.045",mirrored="false"} 40.0
msgroute_request_duration_seconds_bucket{le="0.048",mirrored="false"} 45.0
msgroute_request_duration_seconds_bucket{le="0.05",mirrored="false"} 48.0
msgroute_request_duration_seconds_bucket{le="+Inf",mirrored="false"} 50.0
msgroute_request_duration_seconds_count{mirrored="false"} 50.0
msgroute_request_duration_seconds_sum{mirrored="false"} 1.5
msgroute_request_duration_seconds_bucket{le="0.045",mirrored="true"} 5.0
msgroute_request_duration_seconds_bucket{le="0.048",mirrored="true"} 6.0
msgroute_request_duration_seconds_bucket{le="0.05",mirrored="true"} 7.0
msgroute_request_duration_seconds_bucket{le="+Inf",mirrored="true"} 10.0
msgroute_request_duration_seconds_count{mirrored="true"} 10.0
msgroute_request_duration_seconds_sum{mirrored="true"} 0.5
# HELP msgroute_requests_total Requests
# TYPE msgroute_requests_total counter
msgroute_requests_total{mirrored="false",status_class="2xx"} 47.0
msgroute_requests_total{mirrored="false",status_class="5xx"} 3.0
msgroute_requests_total{mirrored="true",status_class="2xx"} 9.0
msgroute_requests_total{mirrored="true",status_class="4xx"} 1.0
# HELP msgroute_requests_created Requests
# TYPE msgroute_requests_created gauge
msgroute_requests_created{mirrored="false",status_class="2xx"} 1.7e+09
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 6.7108864e+07
# TYPE msgroute_breaker_state gauge
msgroute_breaker_state{destination="billing"} 0.0
msgroute_breaker_state{destination="orders"} 2.0
"""

SAMPLES = parse_samples(ROUTER_TEXT)
HIST = "msgroute_request_duration_seconds"


def test_histogram_buckets_are_summed_over_label_sets() -> None:
    assert histogram_buckets(SAMPLES, HIST) == {0.045: 45.0, 0.048: 51.0, 0.05: 55.0, math.inf: 60.0}


def test_histogram_buckets_filtered_by_matchers() -> None:
    assert histogram_buckets(SAMPLES, HIST, {"mirrored": "true"}) == {
        0.045: 5.0,
        0.048: 6.0,
        0.05: 7.0,
        math.inf: 10.0,
    }


def test_counter_by_status_class_spans_mirrored_and_live() -> None:
    by_status = sum_by_label(counter_series(SAMPLES, "msgroute_requests_total"), "status_class")
    assert by_status == {"2xx": 56.0, "5xx": 3.0, "4xx": 1.0}


def test_counter_created_samples_are_not_counted() -> None:
    # _created is a timestamp gauge, it must never leak into request totals.
    series = counter_series(SAMPLES, "msgroute_requests_total")
    assert sum(series.values()) == 60.0
    assert len(series) == 4


def test_sum_by_label_groups_missing_label_under_empty() -> None:
    series = counter_series(parse_samples('x_total 4\nx_total{k="a"} 1\n'), "x_total")
    assert sum_by_label(series, "k") == {"": 4.0, "a": 1.0}


def test_gauge_values() -> None:
    assert gauge_value(SAMPLES, "process_resident_memory_bytes") == 64 * 1024 * 1024
    assert sorted(gauge_values(SAMPLES, "msgroute_breaker_state")) == [0.0, 2.0]
    assert gauge_value(SAMPLES, "msgroute_breaker_state") == 2.0  # worst destination
    assert gauge_value(SAMPLES, "msgroute_breaker_state", {"destination": "billing"}) == 0.0
    assert gauge_value(SAMPLES, "no_such_gauge") is None


def test_untyped_exposition_parses_the_same() -> None:
    text = 'h_bucket{le="0.1"} 3\nh_bucket{le="+Inf"} 4\nreq_total{status_class="5xx"} 2\n'
    samples = parse_samples(text)
    assert histogram_buckets(samples, "h") == {0.1: 3.0, math.inf: 4.0}
    assert sum_by_label(counter_series(samples, "req_total"), "status_class") == {"5xx": 2.0}


def test_malformed_text_raises_parse_error() -> None:
    with pytest.raises(MetricsParseError, match="not Prometheus text exposition"):
        parse_samples("<html>502 Bad Gateway</html>\n")


def test_bucket_without_le_is_rejected() -> None:
    with pytest.raises(MetricsParseError, match="without an le label"):
        histogram_buckets(parse_samples('h_bucket{x="1"} 3\n'), "h")


def test_bucket_with_non_numeric_le_is_rejected() -> None:
    with pytest.raises(MetricsParseError, match="le='fast'"):
        histogram_buckets(parse_samples('h_bucket{le="fast"} 3\n'), "h")


def test_missing_library_is_reported_not_raised_at_import() -> None:
    # A fresh interpreter, so reloading never swaps the classes other tests' modules hold.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["prometheus_client.parser"] = None
        from ansible_collections.msgroute.rollout.plugins.module_utils import promtext
        assert promtext.HAS_PROMETHEUS_CLIENT is False
        assert "prometheus_client.parser" in promtext.PROMETHEUS_CLIENT_IMPORT_ERROR
        try:
            promtext.parse_samples("x 1")
        except promtext.MetricsParseError as exc:
            print("refused:", exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "refused: prometheus_client is not installed" in done.stdout
