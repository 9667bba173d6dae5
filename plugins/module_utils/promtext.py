"""The collection's one parser of Prometheus text exposition (what a router's ``/metrics`` returns).

Samples are matched by their exposed name (``x_bucket``, ``x_total``), not by metric family, so a
target that omits ``# TYPE`` lines parses the same as one that declares them.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Iterable, Mapping
from typing import NamedTuple

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Kept so the module can answer with missing_required_lib('prometheus_client') instead of a traceback.
    HAS_PROMETHEUS_CLIENT = False
    PROMETHEUS_CLIENT_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_PROMETHEUS_CLIENT = True
    PROMETHEUS_CLIENT_IMPORT_ERROR = None

# The exposition format we parse; asking for it stops a target from answering in OpenMetrics.
ACCEPT_HEADER = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

LabelSet = tuple[tuple[str, str], ...]


class Sample(NamedTuple):
    """One exposed line: sample name, its labels and its value."""

    name: str
    labels: dict[str, str]
    value: float


class MetricsParseError(ValueError):
    """The text is not Prometheus exposition; the message says why."""


def parse_samples(text: str) -> list[Sample]:
    """All samples of an exposition text, in order; raises MetricsParseError on malformed text."""
    if not HAS_PROMETHEUS_CLIENT:
        raise MetricsParseError(f"prometheus_client is not installed: {PROMETHEUS_CLIENT_IMPORT_ERROR}")
    try:
        return [
            Sample(sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MetricsParseError(f"not Prometheus text exposition: {exc}") from exc


def _matches(labels: Mapping[str, str], matchers: Mapping[str, str] | None) -> bool:
    return not matchers or all(labels.get(key) == value for key, value in matchers.items())


def _select(samples: Iterable[Sample], name: str, matchers: Mapping[str, str] | None) -> list[Sample]:
    # NaN values are kept: dropping them would turn a broken breaker gauge into "no breaker open".
    return [s for s in samples if s.name == name and _matches(s.labels, matchers)]


def parse_le(value: str) -> float:
    """An ``le`` label as a bound; ``+Inf`` and ``1e-3`` spellings are both legal exposition."""
    try:
        return float(value)
    except ValueError as exc:
        raise MetricsParseError(f"bucket bound le={value!r} is not a number") from exc


def histogram_buckets(
    samples: Iterable[Sample], name: str, matchers: Mapping[str, str] | None = None
) -> dict[float, float]:
    """Cumulative bucket counts (le -> count) of histogram ``name``, summed over every label set.

    Summing over the other labels is ``sum by (le)``: the quantile must be taken over the whole
    population, never averaged from per-series quantiles.
    """
    buckets: dict[float, float] = {}
    for sample in _select(samples, f"{name}_bucket", matchers):
        if "le" not in sample.labels:
            raise MetricsParseError(f"{name}_bucket sample without an le label: {sample.labels}")
        bound = parse_le(sample.labels["le"])
        buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def label_key(labels: Mapping[str, str]) -> LabelSet:
    """A hashable identity for one series, so two scrapes can be matched series by series."""
    return tuple(sorted(labels.items()))


def counter_series(
    samples: Iterable[Sample], name: str, matchers: Mapping[str, str] | None = None
) -> dict[LabelSet, float]:
    """Every series of counter ``name`` by label set: deltas and resets are per series in Prometheus."""
    series: dict[LabelSet, float] = {}
    for sample in _select(samples, name, matchers):
        key = label_key(sample.labels)
        series[key] = series.get(key, 0.0) + sample.value
    return series


def sum_by_label(series: Mapping[LabelSet, float], label: str) -> dict[str, float]:
    """``sum by (label)`` over series; series without the label are grouped under ``""``."""
    grouped: dict[str, float] = {}
    for key, value in series.items():
        group = dict(key).get(label, "")
        grouped[group] = grouped.get(group, 0.0) + value
    return grouped


def gauge_values(
    samples: Iterable[Sample], name: str, matchers: Mapping[str, str] | None = None
) -> list[float]:
    """Every value of gauge ``name`` (one per label set), e.g. one breaker state per destination."""
    return [s.value for s in _select(samples, name, matchers)]


def gauge_value(
    samples: Iterable[Sample], name: str, matchers: Mapping[str, str] | None = None
) -> float | None:
    """Gauge ``name``; the highest value if several label sets match, since a gate wants the worst one.

    None when the gauge is absent, so "not exposed" is never mistaken for zero; NaN if any value is NaN.
    """
    values = gauge_values(samples, name, matchers)
    if not values:
        return None
    return math.nan if any(math.isnan(v) for v in values) else max(values)
