"""Prometheus classic-histogram arithmetic, reproduced exactly so a gate computed from two ``/metrics``
scrapes agrees with what ``histogram_quantile(0.95, sum by (le) (rate(...)))`` shows on a dashboard.

Buckets are ``(upper_bound, cumulative_count)`` pairs, ``+Inf`` included, as Prometheus exposes them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Union

# Evaluated at import on the managed host: typing.Union, since `X | Y` needs Python 3.10 there.
Buckets = Union[Mapping[float, float], Iterable[tuple[float, float]]]  # noqa: UP007

# Prometheus (promql/quantile.go) treats relative differences below this as floating point noise.
SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = 2.2250738585072014e-308


def _almost_equal(a: float, b: float, epsilon: float) -> bool:
    """Relative float comparison, the same as Prometheus' ``util/almost.Equal``."""
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, sys.float_info.max) < epsilon


def _as_pairs(buckets: Buckets) -> list[tuple[float, float]]:
    items = buckets.items() if isinstance(buckets, Mapping) else buckets
    return [(float(bound), float(count)) for bound, count in items]


def _coalesce(pairs: list[tuple[float, float]]) -> list[list[float]]:
    """Merge buckets with the same bound (sorted input), as Prometheus does for duplicate ``le`` values."""
    merged: list[list[float]] = []
    for bound, count in pairs:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    return merged


def _ensure_monotonic(buckets: list[list[float]]) -> None:
    """Flatten decreases in place: a non-monotonic histogram would make the rank search meaningless.

    Numerically insignificant differences are ignored in both directions and real decreases are removed,
    keeping the previous count, exactly as ``ensureMonotonicAndIgnoreSmallDeltas`` does.
    """
    prev = buckets[0][1]
    for bucket in buckets[1:]:
        curr = bucket[1]
        if curr == prev:
            continue
        if _almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) or curr < prev:
            bucket[1] = prev
            continue
        prev = curr


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile of a classic histogram with Prometheus' ``histogram_quantile`` semantics.

    Returns None where Prometheus returns NaN for want of data (no observations, no ``+Inf`` bucket,
    fewer than two buckets, q is NaN) because a gate must treat "no answer" as missing data. A NaN
    bucket count or bound is not missing data but a broken input: the answer is then NaN, always (a
    partial search would return a number for some layouts), and the gate fails on it.
    q < 0 gives -inf and q > 1 gives +inf, as in Prometheus.
    """
    if math.isnan(q):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    pairs = _as_pairs(buckets)
    if any(math.isnan(bound) or math.isnan(count) for bound, count in pairs):
        return math.nan
    pairs.sort(key=lambda pair: pair[0])
    if not pairs or pairs[-1][0] != math.inf:
        return None
    merged = _coalesce(pairs)
    _ensure_monotonic(merged)
    if len(merged) < 2:
        return None
    observations = merged[-1][1]
    if observations == 0:
        return None
    rank = q * observations
    # First bucket whose cumulative count reaches the rank; the +Inf bucket is never searched.
    index = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if index == len(merged) - 1:
        # The quantile lies above every finite bound: the highest finite bound is all we know.
        return merged[-2][0]
    if index == 0 and merged[0][0] <= 0:
        return merged[0][0]
    bucket_start = 0.0
    bucket_end, count = merged[index]
    if index > 0:
        bucket_start = merged[index - 1][0]
        count -= merged[index - 1][1]
        rank -= merged[index - 1][1]
    if count == 0:
        # Only reachable for q == 0 over an empty lowest bucket, where Prometheus computes 0/0 = NaN.
        return None
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def counter_delta(before: float | None, after: float) -> float:
    """Increase of one counter between two scrapes, ``after`` alone after a reset (as ``increase`` does)."""
    if before is None or after < before:
        return after
    return after - before


def bucket_delta(before: Mapping[float, float], after: Mapping[float, float]) -> dict[float, float]:
    """Per-bucket increase of a histogram between two scrapes of the same process.

    A restart resets every bucket at once, so if any bucket went down (or disappeared) the whole of
    ``after`` is the delta: subtracting bucket by bucket would mix two processes' counts and could
    produce a histogram that is no longer cumulative.
    """
    reset = any(bound not in after or after[bound] < count for bound, count in before.items())
    if reset:
        return dict(after)
    return {bound: counter_delta(before.get(bound), count) for bound, count in after.items()}


def sum_buckets(histograms: Iterable[Mapping[float, float]]) -> dict[float, float]:
    """Add histograms bucket by bucket: the ``sum by (le)`` that must happen before the quantile."""
    total: dict[float, float] = {}
    for histogram in histograms:
        for bound, count in histogram.items():
            total[bound] = total.get(bound, 0.0) + count
    return total
