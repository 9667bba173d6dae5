"""The Prometheus provider of the gate: the PromQL of one measurement, and its answers turned into one.

Prometheus answers NaN for 0/0 (no requests in the window): that is "no data", as an empty answer is.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    BREAKER_OPEN,
    LABEL_NAME,
    MIB,
    QUANTILE,
    Measurement,
    MetricNames,
    assess,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import Thresholds

# rate() needs at least two samples in its window; 60 s gives four at a 15 s scrape interval.
MIN_WINDOW_SECONDS = 60
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


class PrometheusQueryError(ValueError):
    """Prometheus answered, but not with a usable instant vector."""


def default_window(interval_seconds: float) -> str:
    """PromQL range for a measurement: the interval, but never so short that rate() sees one sample."""
    return f"{max(math.ceil(interval_seconds), MIN_WINDOW_SECONDS)}s"


def check_window(window: Any) -> str:
    """``window`` if it is a PromQL duration such as 60s or 5m; ValueError naming it otherwise."""
    if not isinstance(window, str) or not _DURATION.match(window):
        raise ValueError(f"window: {window!r} is not a PromQL duration such as 60s or 5m")
    return window


def label_selector(labels: Mapping[str, str], *extra: str) -> str:
    """``{name="value",...}`` with values escaped, ``extra`` matchers appended; empty for no labels."""
    parts = []
    for name in sorted(labels):
        if not LABEL_NAME.match(str(name)):
            raise ValueError(f"selector: {name!r} is not a Prometheus label name")
        value = str(labels[name]).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{name}="{value}"')
    parts.extend(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def prometheus_queries(
    selector_labels: Mapping[str, str], window: str, names: MetricNames | None = None
) -> dict[str, str]:
    """The PromQL of one measurement, by result key (p95, success, requests, memory, breaker).

    ``success`` puts ``or vector(0)`` around the numerator: when every request fails the non-failed
    series are absent and the plain ratio would be empty, turning a 0 % success rate into "no data".
    """
    names = names or MetricNames()
    check_window(window)
    sel = label_selector(selector_labels)
    failed = "|".join(names.failure_classes)
    ok_sel = label_selector(selector_labels, f'{names.status_label}!~"{failed}"')
    queries = {
        "p95": f"histogram_quantile({QUANTILE}, sum by (le) (rate({names.histogram}_bucket{sel}[{window}])))",
        "success": (
            f"(sum(rate({names.requests}{ok_sel}[{window}])) or vector(0))"
            f" / sum(rate({names.requests}{sel}[{window}]))"
        ),
        "requests": f"sum(increase({names.requests}{sel}[{window}]))",
        "memory": f"max({names.memory}{sel})",
    }
    if names.breaker:
        queries["breaker"] = f"max({names.breaker}{sel})"
    return queries


def _sample_value(pair: Any) -> float | None:
    try:
        value = float(pair[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise PrometheusQueryError(f"unexpected sample {pair!r} in Prometheus answer") from exc
    return None if math.isnan(value) else value


def _instant_vector(json_body: Any) -> Any:
    """The ``data`` of a successful ``/api/v1/query`` answer (decoded JSON or its text); raises
    PrometheusQueryError for an error status or an answer that is not JSON."""
    if isinstance(json_body, (str, bytes)):
        try:
            json_body = json.loads(json_body)
        except ValueError as exc:
            raise PrometheusQueryError(f"Prometheus answer is not JSON: {exc}") from exc
    if not isinstance(json_body, Mapping):
        raise PrometheusQueryError(f"Prometheus answer is not a JSON object: {json_body!r:.200}")
    if json_body.get("status") != "success":
        raise PrometheusQueryError(
            f"Prometheus query failed: {json_body.get('errorType', 'unknown')}: "
            f"{json_body.get('error', 'no error message')}"
        )
    return json_body.get("data") or {}


def parse_prometheus_vector(json_body: Any) -> float | None:
    """The single value of an ``/api/v1/query`` answer (decoded JSON or its text).

    Empty result and NaN are None (no data); an error status or more than one series raises
    PrometheusQueryError, since the gate's queries always aggregate to one series.
    """
    data = _instant_vector(json_body)
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "scalar":
        return _sample_value(result)
    if result_type != "vector" or not isinstance(result, list):
        raise PrometheusQueryError(f"expected an instant vector, got resultType {result_type!r}")
    if not result:
        return None
    if len(result) > 1:
        raise PrometheusQueryError(f"expected one series, got {len(result)}: aggregate the query")
    return _sample_value(result[0].get("value"))


def parse_prometheus_series(json_body: Any) -> list[tuple[dict[str, str], float]]:
    """Every series of an instant vector answer as (labels, value); NaN is kept, for the caller to judge.

    For queries that keep a label (``sum by (le)``); an empty answer is an empty list.
    """
    data = _instant_vector(json_body)
    result_type, result = data.get("resultType"), data.get("result")
    if result_type != "vector" or not isinstance(result, list):
        raise PrometheusQueryError(f"expected an instant vector, got resultType {result_type!r}")
    series = []
    for item in result:
        labels = item.get("metric") if isinstance(item, Mapping) else None
        pair = item.get("value") if isinstance(item, Mapping) else None
        try:
            value = float(pair[1])  # type: ignore[index]
        except (TypeError, ValueError, IndexError) as exc:
            raise PrometheusQueryError(f"unexpected series {item!r:.200} in Prometheus answer") from exc
        series.append(({str(k): str(v) for k, v in (labels or {}).items()}, value))
    return series


def _breaker_open(state: float | None) -> float | None:
    """1 if any breaker is open, 0 if none; NaN stays NaN so that the gate fails closed on it."""
    if state is None or math.isnan(state):
        return state
    return int(state >= BREAKER_OPEN)


def measure_from_prometheus(results: Mapping[str, float | None], thresholds: Thresholds) -> Measurement:
    """One measurement from the answers to ``prometheus_queries`` (None where the answer was empty).

    Units are converted to the thresholds' (s -> ms, ratio -> %, bytes -> MB). ``max()`` of the breaker
    state only says whether any breaker is open, so ``breaker_open`` is 1 or 0 here. A NaN given here
    (``parse_prometheus_vector`` already turns Prometheus' NaN into None) fails the measurement.
    """
    p95 = results.get("p95")
    success = results.get("success")
    memory = results.get("memory")
    return assess(
        thresholds,
        requests=results.get("requests"),
        p95_ms=None if p95 is None else p95 * 1000.0,
        success_rate=None if success is None else success * 100.0,
        memory_mb=None if memory is None else memory / MIB,
        breaker_open=_breaker_open(results.get("breaker")),
    )
