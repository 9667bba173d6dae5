"""histogram_quantile must give what Prometheus gives; each expected value is worked out by hand from
promql/quantile.go (rank = q * total, linear interpolation inside the bucket)."""

import itertools
import math
import random

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.histogram import (
    bucket_delta,
    counter_delta,
    histogram_quantile,
    sum_buckets,
)

INF = math.inf
# The router's gate-relevant buckets: 50 requests <= 45 ms, 30 in (45, 48], 10 in (48, 50], 10 in (50, 100].
ROUTER = {0.045: 50, 0.048: 80, 0.05: 90, 0.1: 100, INF: 100}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # rank 95 falls in (0.05, 0.1]: 0.05 + 0.05 * (95 - 90) / (100 - 90)
        (0.95, 0.075),
        # rank 90 is exactly the cumulative count of le=0.05: the upper bound itself
        (0.90, 0.05),
        # rank 80 is exactly le=0.048
        (0.80, 0.048),
        # rank 50 fills the first bucket exactly: its upper bound
        (0.50, 0.045),
        # rank 25 in the first bucket interpolates from a lower bound of 0
        (0.25, 0.0225),
        # rank 65 in (0.045, 0.048]: 0.045 + 0.003 * 15 / 30
        (0.65, 0.0465),
    ],
)
def test_quantile_matches_prometheus_hand_computed(q: float, expected: float) -> None:
    assert histogram_quantile(q, ROUTER) == pytest.approx(expected, abs=1e-12)


def test_rank_in_inf_bucket_returns_highest_finite_bound() -> None:
    # 80 of 100 observations above 0.1 s: Prometheus can only say "at least 0.1".
    assert histogram_quantile(0.95, {0.05: 10, 0.1: 20, INF: 100}) == 0.1


def test_quantile_one_lands_on_last_bucket_with_observations() -> None:
    # rank 100 is first reached at le=0.1 (cumulative 100), not in +Inf.
    assert histogram_quantile(1.0, ROUTER) == 0.1


@pytest.mark.parametrize(
    "buckets",
    [
        {0.05: 0, 0.1: 0, INF: 0},  # no observations
        {},  # nothing exposed
        {0.05: 3, 0.1: 5},  # no +Inf bucket
        {INF: 7},  # fewer than two buckets
    ],
)
def test_no_answer_is_none(buckets: dict[float, float]) -> None:
    assert histogram_quantile(0.95, buckets) is None


def test_out_of_range_q_follows_prometheus() -> None:
    assert histogram_quantile(-0.1, ROUTER) == -INF
    assert histogram_quantile(1.1, ROUTER) == INF
    assert histogram_quantile(math.nan, ROUTER) is None


def test_unsorted_pairs_are_sorted_first() -> None:
    pairs = [(INF, 100), (0.05, 90), (0.045, 50), (0.1, 100), (0.048, 80)]
    assert histogram_quantile(0.95, pairs) == pytest.approx(0.075)


def test_duplicate_bounds_are_coalesced() -> None:
    # le=0.1 exposed twice (2 + 3): one bucket of 5, so rank 5 is its upper bound.
    assert histogram_quantile(0.5, [(0.1, 2), (0.1, 3), (INF, 10)]) == pytest.approx(0.1)


def test_non_monotonic_buckets_are_clamped_like_prometheus() -> None:
    # le=0.2 (3) < le=0.1 (5) is raised to 5: rank 6 then sits in (0.2, 0.4] with 3 observations,
    # 0.2 + 0.2 * 1/3. Without the clamp the answer would be 0.2 + 0.2 * 3/5 = 0.32.
    buckets = [(0.1, 5), (0.2, 3), (0.4, 8), (INF, 10)]
    assert histogram_quantile(0.6, buckets) == pytest.approx(0.2 + 0.2 / 3)


def test_float_noise_between_buckets_is_ignored() -> None:
    # The 1e-13 relative excess is precision noise: treated as equal counts, so q=1 stays at le=1.
    noisy = 10 * (1 + 1e-13)
    assert histogram_quantile(1.0, [(1.0, 10.0), (2.0, noisy), (INF, noisy)]) == 1.0


def test_lowest_bucket_at_or_below_zero_returns_its_bound() -> None:
    assert histogram_quantile(0.2, [(0.0, 5), (1.0, 10), (INF, 10)]) == 0.0


def test_quantile_is_monotonic_in_q() -> None:
    rng = random.Random(7)
    bounds = [0.005, 0.01, 0.025, 0.045, 0.048, 0.05, 0.1, 0.25, INF]
    cumulative, running = {}, 0
    for bound in bounds:
        running += rng.randint(0, 40)
        cumulative[bound] = running
    values = [histogram_quantile(q / 100, cumulative) for q in range(1, 101)]
    assert all(a <= b for a, b in itertools.pairwise(values))


def test_counter_delta_handles_reset() -> None:
    assert counter_delta(10, 25) == 15
    assert counter_delta(25, 4) == 4  # restarted process: its new count is the increase
    assert counter_delta(None, 7) == 7  # series born between scrapes


def test_bucket_delta_subtracts_each_bucket() -> None:
    before = {0.05: 10, 0.1: 12, INF: 12}
    after = {0.05: 40, 0.1: 50, INF: 55}
    assert bucket_delta(before, after) == {0.05: 30, 0.1: 38, INF: 43}


def test_bucket_delta_takes_after_when_any_bucket_went_down() -> None:
    # le=0.05 went 10 -> 40 but +Inf 100 -> 50: the process restarted, so all of `after` is new.
    before = {0.05: 10, INF: 100}
    after = {0.05: 40, INF: 50}
    assert bucket_delta(before, after) == after


def test_bucket_delta_takes_after_when_a_bucket_disappeared() -> None:
    assert bucket_delta({0.05: 1, 0.2: 2, INF: 2}, {0.05: 3, INF: 4}) == {0.05: 3, INF: 4}


def test_sum_buckets_is_sum_by_le() -> None:
    total = sum_buckets([{0.05: 1, INF: 2}, {0.05: 3, 0.1: 4, INF: 5}])
    assert total == {0.05: 4, 0.1: 4, INF: 7}
