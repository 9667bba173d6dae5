"""One gate measurement: thresholds against measured values, and deltas between two scrapes."""

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    Measurement,
    MetricNames,
    assess,
    measure_from_scrapes,
    measurement_from_dict,
    pool_requests,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import (
    Thresholds,
    resolve_thresholds,
)
from gate_samples import INF, MIB, PARTIAL, exposition, failed_p95, ok


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


@pytest.mark.parametrize(
    ("new", "legacy", "expected"),
    [
        (400.0, 1200.0, {"new": 400.0, "legacy": 1200.0}),
        (0.0, 0.0, {"new": 0.0, "legacy": 0.0}),
        (None, 1200.0, None),
        (400.0, None, None),
        (float("nan"), 10.0, None),
        (400.0, -1.0, None),
    ],
)
def test_pool_requests_need_both_counts(new, legacy, expected) -> None:
    assert pool_requests(new, legacy) == expected


def test_pool_requests_are_recorded_and_never_judged() -> None:
    plain = assess(PARTIAL, requests=500, p95_ms=31.0, success_rate=99.9, memory_mb=60)
    split = assess(PARTIAL, requests=500, p95_ms=31.0, success_rate=99.9, memory_mb=60)
    split.pool_requests = pool_requests(500.5, 1500)
    assert plain.to_dict()["pool_requests"] is None
    assert split.to_dict()["pool_requests"] == {"new": 500.5, "legacy": 1500}
    assert {k: v for k, v in split.to_dict().items() if k != "pool_requests"} == {
        k: v for k, v in plain.to_dict().items() if k != "pool_requests"
    }
    assert Measurement(verdict=ERROR).to_dict()["pool_requests"] is None


def test_a_measurement_round_trips_with_its_pool_requests():
    measurement = Measurement(
        verdict=SUCCESSFUL, requests=1200.0, pool_requests={"new": 1200.0, "legacy": 1195.0}
    )
    back = measurement_from_dict(measurement.to_dict())
    assert back.pool_requests == {"new": 1200.0, "legacy": 1195.0}
    with pytest.raises(ValueError, match="pool_requests"):
        measurement_from_dict({**measurement.to_dict(), "pool_requests": [1, 2]})
