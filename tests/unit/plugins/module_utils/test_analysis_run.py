"""Argo Rollouts run rules: limits, verdicts, messages, and the settings check shared with the pre-flight."""

import json
import math

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.analysis_run import (
    AnalysisRun,
    evaluate_run,
    plan_message,
    should_stop,
    validate_phase_settings,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    RUNNING,
    SUCCESSFUL,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import resolve_thresholds
from gate_samples import errored, failed_p95, inconclusive, ok


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
    run = AnalysisRun(count=4, consecutive_success_limit=2, failure_limit=2)
    assert evaluate_run([ok(), failed_p95(), ok(), failed_p95()], run).verdict == INCONCLUSIVE
    no_failure_limit = AnalysisRun(count=3, consecutive_success_limit=2, failure_limit=-1)
    result = evaluate_run([ok(), failed_p95(), ok()], no_failure_limit)
    assert result.verdict == FAILED
    assert "p95 latency 83.1 ms > threshold 48 ms" in result.message


def test_tolerated_bad_measurements_alone_never_pass() -> None:
    run = AnalysisRun(count=2, failure_limit=2)
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
        "pool_requests": None,
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"count": 0}, "count"),
        ({"failure_limit": -2}, "failure_limit"),
        ({"failure_limit": -1}, "failure_limit"),
        ({"consecutive_error_limit": -1}, "consecutive_error_limit"),
        ({"count": 2, "consecutive_success_limit": 3}, "count"),
        ({"interval": -1}, "interval"),
        ({"initial_delay": math.inf}, "initial_delay"),
    ],
)
def test_bad_run_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        AnalysisRun(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        # The examples: limits that can never trigger, refused as Argo's ValidateMetric does.
        {"count": 1, "failure_limit": 2},
        {"count": 3, "failure_limit": 2, "consecutive_success_limit": 2},
        {"count": 1, "inconclusive_limit": 2},
        {"count": 2, "failure_limit": -1, "consecutive_success_limit": 3},
        {"count": 0},
        {"count": True},
        {"count": 2.0},
        {"failure_limit": -2},
        {"inconclusive_limit": -1},
        {"consecutive_error_limit": -1},
        {"consecutive_success_limit": -1},
        {"interval": math.nan},
        {"interval": -0.001},
        {"interval": math.inf},
        {"initial_delay": math.nan},
        {"initial_delay": "5"},
    ],
)
def test_limits_that_can_never_trigger_or_bad_values_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AnalysisRun(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        # Each limit exactly at its edge is accepted: Argo's rule is count >= the sum, not >.
        {"count": 2, "failure_limit": 2},
        {"count": 4, "failure_limit": 2, "consecutive_success_limit": 2},
        {"count": 2, "inconclusive_limit": 2},
        {"count": 3, "failure_limit": -1, "consecutive_success_limit": 3},
        {"count": 1, "consecutive_error_limit": 0, "interval": 0, "initial_delay": 0},
    ],
)
def test_limits_at_their_edge_are_accepted(kwargs: dict) -> None:
    run = AnalysisRun(**kwargs)
    assert {key: getattr(run, key) for key in kwargs} == kwargs


def test_validate_phase_settings_accepts_the_inventories_settings() -> None:
    assert (
        validate_phase_settings(
            "shadow", {"min_requests": 1000}, {"interval": 300, "count": 288, "failure_limit": 2}
        )
        == []
    )
    assert (
        validate_phase_settings(
            "full", {"min_requests": "40"}, {"interval": "5", "count": "3", "window": "5s"}
        )
        == []
    )
    assert validate_phase_settings("partial", None, None) == []
    assert validate_phase_settings("partial", {}, {"count": None, "window": ""}) == []


@pytest.mark.parametrize(
    ("thresholds", "analysis", "problems"),
    [
        (
            {},
            {"count": 1, "failure_limit": 2},
            ["count: 1 must be >= failure_limit + consecutive_success_limit"],
        ),
        ({}, {"count": 3, "failure_limit": 2, "consecutive_success_limit": 2}, ["count: 3 must be >="]),
        ({}, {"count": 1, "inconclusive_limit": 2}, ["count: 1 must be >= inconclusive_limit (2)"]),
        ({}, {"count": "three"}, ["count: "]),
        ({}, {"count": 2.5}, ["count: "]),
        ({}, {"interval": "nan"}, ["interval: must be a number of seconds >= 0"]),
        ({}, {"interval": "-inf"}, ["interval: must be a number of seconds >= 0"]),
        ({}, {"initial_delay": -1}, ["initial_delay: must be a number of seconds >= 0"]),
        ({}, {"window": "5 minutes"}, ["window: '5 minutes' is not a PromQL duration"]),
        ({}, {"windw": "5m"}, ["windw: unknown analysis setting"]),
        ({}, ["count", 3], ["analysis: expected a mapping"]),
        ({"max_p95_ms": "nan"}, {}, ["thresholds.max_p95_ms: must be > 0"]),
        ({"max_p95_ms": math.inf}, {}, ["thresholds.max_p95_ms: must be > 0"]),
        ({"min_success_rate": math.nan}, {}, ["thresholds.min_success_rate: must be in [0, 100]"]),
        ({"max_memory_mb": 0}, {}, ["thresholds.max_memory_mb: must be > 0"]),
        ({"min_requests": -1}, {}, ["thresholds.min_requests: must be >= 0"]),
        ({"max_open_breakers": "many"}, {}, ["thresholds.max_open_breakers: expected a number"]),
        (
            {"max_p95_ms": 0},
            {"count": 1, "failure_limit": 2},
            ["thresholds.max_p95_ms: must be > 0", "count: 1 must be >="],
        ),
    ],
)
def test_validate_phase_settings_names_each_problem(thresholds: dict, analysis: dict, problems: list) -> None:
    found = validate_phase_settings("partial", thresholds, analysis)
    assert len(found) == len(problems)
    for message, start in zip(found, problems, strict=True):
        assert message.startswith(start), message


def test_validate_phase_settings_refuses_an_unknown_phase() -> None:
    assert validate_phase_settings("canary", {}, {}) == [
        "phase: unknown phase 'canary'; expected one of shadow, partial, full"
    ]


# ------------------------------------------------------------------ what a gate would do (check mode)


def test_plan_message_says_what_would_be_measured_and_names_no_verdict() -> None:
    run = AnalysisRun(count=3, interval=5)
    message = plan_message(run, resolve_thresholds("partial"), "1 /metrics target(s)")
    assert message == (
        "would measure p95 latency, success rate and memory of the new pool (1 /metrics target(s)) "
        "every 5 s, 3 times, against p95 <= 48 ms, success >= 99 %, memory <= 128 MB, at least 20 requests a "
        "measurement (failure_limit 0, inconclusive_limit 0, consecutive_error_limit 4); not measured"
    )
    assert not any(verdict in message for verdict in (SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR))


def test_plan_message_names_the_streak_the_judge_and_a_failure_limit_that_is_off() -> None:
    run = AnalysisRun(
        count=1, interval=0.5, initial_delay=1.25, failure_limit=-1, consecutive_success_limit=1
    )
    thresholds = resolve_thresholds("shadow", {"max_memory_mb": None, "min_requests": 5})
    message = plan_message(run, thresholds, "Prometheus at http://p:9090, window 5s", "would judge it")
    assert message.startswith("would measure p95 latency and success rate of the new pool (Prometheus at")
    assert "every 0.5 s, once after 1.25 s, against p95 <= 45 ms, success >= 98.5 %, at least 5" in message
    limits = "failure_limit off, inconclusive_limit 0, consecutive_error_limit 4, consecutive_success_limit 1"
    assert f"({limits})" in message
    assert message.endswith("; would judge it; not measured")
