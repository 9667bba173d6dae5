"""The new pool failing never fails the clients.

In order, on one world (each step starts from the state the previous one left):
1. weight 50, every new instance killed under load: requests fail over to legacy, <= 0.1 % client errors;
2. shadow 100 % to that dead pool: primary requests are not slowed and none fails;
3. shadow 100 % to a new pool that answers in 500 ms: the same.
The suite runs this module last; a test that runs after it gets the new routers repaired first (conftest).
"""

from __future__ import annotations

import time

import pytest

from router_app.loadgen import Tally
from tests.support.traffic_world import LB1, NEW, altered_new_routers, applied, backends, docker

SLOW_MS = 500


def waited_for_the_shadow(tally: Tally) -> int:
    """Primary requests that took as long as a shadow answer: what waiting on the mirror would look like."""
    return sum(1 for ms in tally.latencies_ms if ms >= SLOW_MS * 0.9)


def mirror_counts(lb) -> dict[str, float]:
    return lb.metrics().by_label("msgroute_lb_mirror_requests_total", "result")


def settled_mirror_counts(lb, before: dict[str, float], copies: int) -> dict[str, float]:
    """Copies still in flight are counted when they end (at the latest after the mirror timeout)."""
    deadline = time.monotonic() + 10
    while True:
        after = mirror_counts(lb)
        if sum(after.values()) - sum(before.values()) >= copies or time.monotonic() > deadline:
            return after
        time.sleep(0.2)


@pytest.fixture(scope="module")
def failures(world):
    results = {}
    altered_new_routers()
    try:
        LB1.set_runtime(50)
        before = LB1.metrics()
        with LB1.load(16, rate=200) as running:
            time.sleep(2)
            docker("kill", *NEW)
            time.sleep(7)
        results["killed"] = (running.tally, before, LB1.metrics())

        LB1.set_runtime(0, 100)
        mirrored = mirror_counts(LB1)
        tally = LB1.send(3000, concurrency=16)
        results["dead_shadow"] = (tally, mirrored, settled_mirror_counts(LB1, mirrored, 3000))

        backends("--limit", "routers", "-e", f'{{"router_fault_injection": {{"latency_ms": {SLOW_MS}}}}}')
        applied(weight=0, shadow=100)
        mirrored = mirror_counts(LB1)
        tally = LB1.send(3000, concurrency=16)
        results["slow_shadow"] = (tally, mirrored, settled_mirror_counts(LB1, mirrored, 3000))
    finally:
        LB1.set_runtime(0, 0)
    return results


def test_killing_every_new_instance_fails_at_most_one_in_a_thousand(failures):
    tally, _, _ = failures["killed"]
    assert tally.requests > 1000, tally.snapshot()
    assert tally.failed <= tally.requests * 0.001, tally.snapshot()


def test_legacy_answered_what_the_new_pool_could_not(failures):
    tally, before, after = failures["killed"]
    assert tally.by_version["legacy"] > tally.by_version["2.0.0"], tally.snapshot()
    assert after.value("msgroute_lb_failovers_total") > before.value("msgroute_lb_failovers_total")


@pytest.mark.parametrize("case", ["dead_shadow", "slow_shadow"])
def test_a_failing_shadow_pool_neither_fails_nor_slows_primary_requests(failures, case):
    tally, _, _ = failures[case]
    assert tally.requests == 3000
    assert tally.failed == 0, tally.snapshot()
    assert set(tally.by_pool) == {"legacy"}
    assert waited_for_the_shadow(tally) <= tally.requests * 0.01, tally.snapshot()


def test_the_copies_went_to_the_shadow_pool_and_failed_there(failures):
    for case in ("dead_shadow", "slow_shadow"):
        _, before, after = failures[case]
        delta = {result: after[result] - before[result] for result in after}
        assert sum(delta.values()) >= 2900, (
            case,
            delta,
        )  # every copy accounted for (a few may still be in flight)
        if case == "dead_shadow":
            assert delta["2xx"] == 0 and delta["error"] + delta["5xx"] >= 2900 - delta["dropped"], delta
        else:
            assert delta["2xx"] > 0, delta
