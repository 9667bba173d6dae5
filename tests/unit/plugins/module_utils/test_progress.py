"""A run measured one task at a time: the progress carried between tasks decides exactly as a run replayed in
one task (evaluate_run), stops at the deciding measurement, and says each measurement in one line."""

from __future__ import annotations

import itertools

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.analysis_run import (
    AnalysisRun,
    Progress,
    advance,
    evaluate_run,
    max_measurements,
    progress_line,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.judge import PoolTotals
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    RUNNING,
    SUCCESSFUL,
    Measurement,
    measurement_from_dict,
)
from gate_samples import errored, failed_p95, inconclusive, ok

KINDS = {SUCCESSFUL: ok, FAILED: failed_p95, INCONCLUSIVE: inconclusive, ERROR: errored}


def carried(measurements: list[Measurement], run: AnalysisRun) -> tuple[Progress, int]:
    """The progress after each measurement in turn, through its dict form (as a task hands it to the next),
    until decided; and how many measurements were taken."""
    progress = Progress()
    for taken, measurement in enumerate(measurements, 1):
        progress = Progress.from_dict(advance(progress, measurement.verdict, run).to_dict())
        if progress.decided:
            return progress, taken
    return progress, len(measurements)


def test_a_failure_past_the_limit_mid_way_stops_the_run_there() -> None:
    run = AnalysisRun(count=6, failure_limit=1)
    progress, taken = carried([ok(), failed_p95(), ok(), failed_p95(), ok(), ok()], run)
    assert (progress.verdict, taken) == (FAILED, 4)
    assert progress.why == "failed (2) > failure_limit (1)"
    assert (progress.count, progress.successful, progress.failed) == (4, 2, 2)


def test_inconclusive_past_its_limit_ends_the_run_inconclusive() -> None:
    run = AnalysisRun(count=4, inconclusive_limit=1)
    progress, taken = carried([inconclusive(), ok(), inconclusive(), ok()], run)
    assert (progress.verdict, taken, progress.why) == (
        INCONCLUSIVE,
        3,
        "inconclusive (2) > inconclusive_limit (1)",
    )


def test_errors_are_retried_not_counted_and_too_many_in_a_row_end_the_run() -> None:
    run = AnalysisRun(count=2, consecutive_error_limit=2)
    progress, taken = carried([errored(), errored(), ok(), errored(), errored(), errored()], run)
    assert (progress.verdict, taken) == (ERROR, 6)
    assert (progress.count, progress.errors, progress.consecutive_errors) == (1, 5, 3)
    retried, taken = carried([errored(), errored(), ok(), ok()], run)
    assert (retried.verdict, taken, retried.count, retried.taken) == (SUCCESSFUL, 4, 2, 4)


def test_undecided_until_count_then_successful() -> None:
    run = AnalysisRun(count=3)
    progress = Progress()
    for expected in (RUNNING, RUNNING, SUCCESSFUL):
        progress = advance(progress, SUCCESSFUL, run)
        assert progress.verdict == expected
    assert progress.why == "3 of 3 measurements successful"
    with pytest.raises(ValueError, match="already decided"):
        advance(progress, SUCCESSFUL, run)


@pytest.mark.parametrize(
    "run",
    [
        AnalysisRun(count=3),
        AnalysisRun(count=4, failure_limit=1, inconclusive_limit=1, consecutive_error_limit=1),
        AnalysisRun(count=4, failure_limit=-1, consecutive_success_limit=2),
        AnalysisRun(count=3, failure_limit=1, consecutive_success_limit=2),
    ],
)
def test_one_task_at_a_time_decides_as_evaluate_run_and_within_max_measurements(run: AnalysisRun) -> None:
    """Every sequence of verdicts up to the bound: the same verdict and the same stopping point."""
    for verdicts in itertools.product(KINDS, repeat=min(max_measurements(run), 6)):
        measurements = [KINDS[verdict]() for verdict in verdicts]
        outcome = evaluate_run(measurements, run)
        progress, taken = carried(measurements, run)
        assert progress.verdict == outcome.verdict, verdicts
        assert taken == len(outcome.history), verdicts
    always_errors = [errored()] * max_measurements(run)
    assert carried(always_errors, run)[0].decided


def test_max_measurements_is_the_longest_run_possible() -> None:
    run = AnalysisRun(count=3, consecutive_error_limit=2)
    assert max_measurements(run) == 9
    # Two errors before each counted measurement: the longest a run can go on.
    longest = [errored(), errored(), ok()] * 3
    progress, taken = carried(longest, run)
    assert (progress.verdict, taken) == (SUCCESSFUL, 9)


def test_the_line_says_which_when_figures_verdict_and_the_limits_so_far() -> None:
    run = AnalysisRun(count=4, failure_limit=1)
    first = ok(p95_ms=31.4, requests=1200, memory_mb=61.2)
    first.finished_at = 1_764_669_912.4
    progress = advance(Progress(), first.verdict, run)
    assert progress_line(first, progress, run) == (
        "1/4 2025-12-02T10:05:12Z p95 31.4 ms, success 99.9 %, memory 61.2 MB, 1200 requests: Successful; "
        "so far failed 0 (failure_limit 1), inconclusive 0 (inconclusive_limit 0), errors in a row 0 "
        "(consecutive_error_limit 4): Running"
    )
    second = failed_p95()
    progress = advance(progress, second.verdict, run)
    assert "2/4 ? p95 83.1 ms" in progress_line(second, progress, run)
    assert (
        "Failed (p95 latency 83.1 ms > threshold 48 ms); so far failed 1 (failure_limit 1)"
        in progress_line(second, progress, run)
    )
    third = failed_p95()
    progress = advance(progress, third.verdict, run)
    assert progress_line(third, progress, run).endswith(": Failed, failed (2) > failure_limit (1)")


def test_an_error_line_says_it_is_not_counted() -> None:
    run = AnalysisRun(count=4, consecutive_success_limit=2)
    progress = advance(advance(Progress(), SUCCESSFUL, run), ERROR, run)
    line = progress_line(errored(), progress, run)
    assert line.startswith("error 1 in a row after 1/4 ? no figures: Error (target http://r1:8080/metrics")
    assert "successes in a row 0 (consecutive_success_limit 2)" in line


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"count": -1}, "progress: not a run's progress"),
        ({"failed": "two"}, "progress: not a run's progress"),
        ({"verdict": "Promoted"}, "progress.verdict: 'Promoted' is not Running or a verdict"),
    ],
)
def test_a_progress_that_is_not_one_is_refused(data: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Progress.from_dict(data)


def test_measurements_and_pool_totals_survive_their_dict_form() -> None:
    measurement = failed_p95()
    measurement.started_at, measurement.finished_at = 1_764_669_900.0, 1_764_669_912.25
    again = measurement_from_dict(measurement.to_dict())
    assert again.to_dict() == measurement.to_dict()
    assert again.finished_at == pytest.approx(1_764_669_912.25)
    with pytest.raises(ValueError, match="each needs a verdict"):
        measurement_from_dict({"p95_ms": 3})
    totals = PoolTotals(
        buckets={0.005: 3.0, float("inf"): 9.0}, by_status={"2xx": 9.0}, problems={"u": "down"}
    )
    assert PoolTotals.from_dict(totals.to_dict()) == totals
    assert PoolTotals.from_dict(None) == PoolTotals()
