"""The baseline judge with provider prometheus, against a real Prometheus scraping real routers.

Its own stand (tests/support/judge_stand.py: msgroute-judge-* containers, network msgroute-judge, ports
28601-28609 on loopback), so it needs no rollout and runs beside the local one: pools ``new`` and ``legacy``
run the same image, ``slow`` adds 5 ms of injected latency - far inside the 48 ms SLA, so only the
comparison with legacy can catch it. The same load runs on every pool at once, then the judge asks
Prometheus for each pool's bucket and status increases over that run, as rollout_analysis does.
"""

from __future__ import annotations

import time

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.judge import (
    HIGH,
    NODATA,
    PASS,
    JudgeConfig,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
)

from tests.support.judge_stand import Stand

RATE = 40
SECONDS = 20


def metric(result, name: str):
    return next(m for m in result.metrics if m.metric == name)


@pytest.fixture(scope="module")
def stand():
    stand = Stand()
    stand.up()
    started = time.monotonic()
    stand.load(SECONDS, dict.fromkeys(stand.pools, RATE))
    stand.run_seconds = time.monotonic() - started
    yield stand
    stand.down()


def test_identical_pools_pass(stand):
    result, queries = stand.judge(stand.run_seconds, "new", "legacy")
    assert result.verdict == SUCCESSFUL, result.summary
    latency = metric(result, "latency")
    assert latency.classification == PASS
    assert abs(latency.effect - 0.5) < 0.05
    # Every request of the run on each side (increase() extrapolates, so not exactly what was sent; a loaded
    # machine sends less than RATE x SECONDS, the same to both pools).
    for pool in ("new", "legacy"):
        assert 0.5 * RATE * SECONDS < latency.requests[pool] < 1.2 * RATE * SECONDS
    assert 0.8 < latency.requests["new"] / latency.requests["legacy"] < 1.25
    assert queries["legacy"]["buckets"].startswith(
        'sum by (le) (increase(msgroute_request_duration_seconds_bucket{job="msgroute-router",pool="legacy"}['
    )


def test_a_pool_slower_inside_the_sla_fails(stand):
    result = stand.judge(stand.run_seconds, "slow", "legacy")[0]
    assert result.verdict == FAILED, result.summary
    latency = metric(result, "latency")
    assert latency.classification == HIGH
    assert latency.effect > 0.8
    assert latency.new["p95_ms"] > latency.legacy["p95_ms"]
    assert result.summary.startswith("Failed (score 50 < marginal_score 75): latency High")


def test_an_absent_pool_is_inconclusive(stand):
    result, queries = stand.judge(stand.run_seconds, "new", "retired")
    assert result.verdict == INCONCLUSIVE
    assert {m.classification for m in result.metrics} == {NODATA}
    assert f"legacy {queries['legacy']['buckets']}: no series" in result.summary


def test_a_range_without_two_scrapes_is_inconclusive(stand):
    result = stand.judge(0.5, "new", "legacy")[0]
    assert result.verdict == INCONCLUSIVE


def test_legacy_just_before_the_run_is_the_baseline_when_it_serves_nothing(stand):
    """The full phase: only the new pools have traffic now; legacy's requests just before are the baseline."""
    started = time.monotonic()
    stand.load(SECONDS, {"new": RATE, "slow": RATE})
    run_seconds = time.monotonic() - started
    before = JudgeConfig(baseline_period="before")
    result, queries = stand.judge(run_seconds, "new", "legacy", before)
    assert result.verdict == SUCCESSFUL, result.summary
    assert " offset " in queries["legacy"]["buckets"]
    assert metric(result, "latency").requests["legacy"] > before.min_samples
    slow = stand.judge(run_seconds, "slow", "legacy", before)[0]
    assert slow.verdict == FAILED, slow.summary
