"""One gate measurement: what the new routers did over one interval, and what that says against the
thresholds. Pure functions, no I/O, so every rule is unit-tested.

A NaN anywhere in a gate input (p95, success rate, memory, request volume, breakers) fails the
measurement: a value that is not a number is never within a threshold.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils._numbers import (
    fmt,
    fmt_pair,
    is_nan,
    rounded,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.histogram import (
    bucket_delta,
    counter_delta,
    histogram_quantile,
    sum_buckets,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.promtext import (
    MetricsParseError,
    Sample,
    counter_series,
    gauge_value,
    gauge_values,
    histogram_buckets,
    parse_samples,
    sum_by_label,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import Thresholds

SUCCESSFUL = "Successful"
FAILED = "Failed"
INCONCLUSIVE = "Inconclusive"
ERROR = "Error"
RUNNING = "Running"
# Not a verdict: what a gate in check mode returns, having measured nothing (rollout_analysis).
NOT_MEASURED = "NotMeasured"
VERDICTS = (SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR)

QUANTILE = 0.95
# msgroute_breaker_state: 0 closed, 1 half-open, 2 open.
BREAKER_OPEN = 2.0
MIB = 1024 * 1024

LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_STATUS_CLASS = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class MetricNames:
    """Names of the router metrics the gate reads; defaults are what ``router_app`` exposes."""

    histogram: str = "msgroute_request_duration_seconds"
    requests: str = "msgroute_requests_total"
    memory: str = "process_resident_memory_bytes"
    breaker: str | None = "msgroute_breaker_state"
    status_label: str = "status_class"
    failure_classes: tuple[str, ...] = ("5xx",)

    def __post_init__(self) -> None:
        for name in ("histogram", "requests", "memory", "breaker"):
            value = getattr(self, name)
            if value is None and name == "breaker":
                continue
            if not isinstance(value, str) or not _METRIC_NAME.match(value):
                raise ValueError(f"metric_names.{name}: {value!r} is not a Prometheus metric name")
        if not LABEL_NAME.match(self.status_label):
            raise ValueError(f"metric_names.status_label: {self.status_label!r} is not a label name")
        object.__setattr__(self, "failure_classes", tuple(self.failure_classes))
        bad = [c for c in self.failure_classes if not isinstance(c, str) or not _STATUS_CLASS.match(c)]
        if not self.failure_classes or bad:
            raise ValueError(
                f"metric_names.failure_classes: need classes like '5xx', got {self.failure_classes!r}"
            )


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    # datetime.UTC needs Python 3.11; modules also run on older managed hosts.
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)  # noqa: UP017
    return moment.isoformat(timespec="milliseconds")


@dataclass
class Measurement:
    """One gate measurement: what was measured over one interval, and what that means.

    ``reasons`` name metric, threshold and measured value for every breach, missing value or error.
    """

    verdict: str
    reasons: list[str] = field(default_factory=list)
    requests: float | None = None
    p95_ms: float | None = None
    success_rate: float | None = None
    memory_mb: float | None = None
    breaker_open: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    # Requests each pool's routers served over the same interval ({"new": ..., "legacy": ...}), when the gate
    # also counted legacy's (the baseline judge on); the report's traffic share per pool. Never judged.
    pool_requests: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable, rounded for humans reading a task result or rollback_decision.json.

        A NaN becomes null here (JSON has no NaN); the reasons say it was NaN.
        """
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "requests": rounded(self.requests),
            "p95_ms": rounded(self.p95_ms),
            "success_rate": rounded(self.success_rate),
            "memory_mb": rounded(self.memory_mb),
            "breaker_open": rounded(self.breaker_open),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "pool_requests": None
            if self.pool_requests is None
            else {pool: rounded(count) for pool, count in self.pool_requests.items()},
        }


def pool_requests(new: float | None, legacy: float | None) -> dict[str, float] | None:
    """The requests each pool's routers served over one interval, for the report's traffic share; None unless
    both counts are known numbers (an Error measurement, a legacy target that could not be scraped, a failed
    query: a share from half the picture would mislead). Never part of a verdict."""
    counts = {"new": new, "legacy": legacy}
    if any(v is None or is_nan(v) or v < 0 for v in counts.values()):
        return None
    return {pool: float(v) for pool, v in counts.items() if v is not None}


def _epoch(moment: Any) -> float | None:
    """An ISO 8601 time as written by ``Measurement.to_dict`` back to seconds since the epoch."""
    if moment is None:
        return None
    return datetime.datetime.fromisoformat(str(moment)).timestamp()


def _figure(value: Any) -> float | None:
    return None if value is None else float(value)


def measurement_from_dict(data: Mapping[str, Any]) -> Measurement:
    """A measurement back from its ``to_dict`` form (a task result carried to a later task).

    ValueError names what is wrong, so a hand-written list is refused rather than misread.
    """
    if not isinstance(data, Mapping) or data.get("verdict") not in VERDICTS:
        raise ValueError(f"measurements: each needs a verdict, one of {', '.join(VERDICTS)}; got {data!r}")
    try:
        breaker = data.get("breaker_open")
        return Measurement(
            verdict=str(data["verdict"]),
            reasons=[str(reason) for reason in data.get("reasons") or []],
            requests=_figure(data.get("requests")),
            p95_ms=_figure(data.get("p95_ms")),
            success_rate=_figure(data.get("success_rate")),
            memory_mb=_figure(data.get("memory_mb")),
            breaker_open=None if breaker is None else int(breaker),
            started_at=_epoch(data.get("started_at")),
            finished_at=_epoch(data.get("finished_at")),
            pool_requests=_pool_counts(data.get("pool_requests")),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"measurements: {exc} in {data!r}") from None


def _pool_counts(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"pool_requests must be a mapping of pool to requests, got {value!r}")
    return {str(pool): float(count) for pool, count in value.items()}


def error_measurement(reasons: Sequence[str]) -> Measurement:
    """A measurement that could not be taken (unreachable target, failed query)."""
    return Measurement(verdict=ERROR, reasons=list(reasons))


def _no_data(what: str, policy: str, failures: list[str], inconclusive: list[str]) -> None:
    if policy == "fail":
        failures.append(f"no data for {what} (no_data=fail)")
    elif policy == "inconclusive":
        inconclusive.append(f"no data for {what}")


def _nan(what: str, limit: str) -> str:
    return f"{what} is NaN (not a number), never within threshold {limit}"


def _judge_memory(
    t: Thresholds, memory_mb: float | None, failures: list[str], inconclusive: list[str]
) -> None:
    if t.max_memory_mb is None:
        return
    if memory_mb is None:
        _no_data("memory", t.no_data, failures, inconclusive)
    elif is_nan(memory_mb):
        failures.append(_nan("memory", f"{fmt(t.max_memory_mb)} MB"))
    elif memory_mb > t.max_memory_mb:
        value, limit = fmt_pair(memory_mb, t.max_memory_mb)
        failures.append(f"memory {value} MB > threshold {limit} MB")


def _judge_breakers(t: Thresholds, breaker_open: float | None, failures: list[str]) -> None:
    # An absent breaker gauge means no breaker was ever created, hence none is open.
    if t.max_open_breakers is None or breaker_open is None:
        return
    if is_nan(breaker_open):
        failures.append(_nan("open breakers", str(t.max_open_breakers)))
    elif breaker_open > t.max_open_breakers:
        failures.append(f"open breakers {fmt(breaker_open)} > threshold {t.max_open_breakers}")


def _judge_traffic(
    t: Thresholds,
    p95_ms: float | None,
    success_rate: float | None,
    failures: list[str],
    inconclusive: list[str],
) -> None:
    if p95_ms is None:
        _no_data("p95 latency", t.no_data, failures, inconclusive)
    elif is_nan(p95_ms):
        failures.append(_nan("p95 latency", f"{fmt(t.max_p95_ms)} ms"))
    elif p95_ms > t.max_p95_ms:
        value, limit = fmt_pair(p95_ms, t.max_p95_ms)
        failures.append(f"p95 latency {value} ms > threshold {limit} ms")
    if success_rate is None:
        _no_data("success rate", t.no_data, failures, inconclusive)
    elif is_nan(success_rate):
        failures.append(_nan("success rate", f"{fmt(t.min_success_rate)} %"))
    elif success_rate < t.min_success_rate:
        value, limit = fmt_pair(success_rate, t.min_success_rate)
        failures.append(f"success rate {value} % < threshold {limit} %")


def assess(
    thresholds: Thresholds,
    *,
    requests: float | None,
    p95_ms: float | None,
    success_rate: float | None,
    memory_mb: float | None = None,
    breaker_open: int | None = None,
) -> Measurement:
    """Judge measured values against thresholds.

    Memory and open breakers are judged whatever the volume: a leak is a leak at any traffic level.
    Latency and success rate are only judged with at least ``min_requests`` requests, because a p95
    over a handful of requests is noise and must not promote (or revert) anything. A NaN input fails
    (a NaN request volume too, and latency and success rate are then judged as if it were enough).
    """
    failures: list[str] = []
    inconclusive: list[str] = []
    t = thresholds
    _judge_memory(t, memory_mb, failures, inconclusive)
    _judge_breakers(t, breaker_open, failures)
    volume = requests or 0.0
    if is_nan(volume):
        failures.append(_nan("request volume", f"minimum {t.min_requests} requests"))
        _judge_traffic(t, p95_ms, success_rate, failures, inconclusive)
    elif volume < t.min_requests:
        inconclusive.append(f"request volume {fmt(volume)} < minimum {t.min_requests} requests")
    else:
        _judge_traffic(t, p95_ms, success_rate, failures, inconclusive)
    verdict = FAILED if failures else INCONCLUSIVE if inconclusive else SUCCESSFUL
    return Measurement(
        verdict=verdict,
        reasons=failures + inconclusive,
        requests=requests,
        p95_ms=p95_ms,
        success_rate=success_rate,
        memory_mb=memory_mb,
        breaker_open=breaker_open,
    )


@dataclass
class TargetDelta:
    """What one target served between two scrapes: cumulative bucket increases (le -> count), request
    increases by status class, and its memory and open breakers at the second scrape."""

    buckets: dict[float, float]
    by_status: dict[str, float]
    memory_bytes: float | None
    open_breakers: int | None


def _series_delta(before: Mapping[Any, float], after: Mapping[Any, float]) -> dict[Any, float]:
    return {key: counter_delta(before.get(key), value) for key, value in after.items()}


def _worst(values: Sequence[float]) -> float | None:
    """The largest value, NaN if any is NaN (``max`` would hide a NaN behind a later number)."""
    if not values:
        return None
    return math.nan if any(is_nan(v) for v in values) else max(values)


def target_delta(before: list[Sample], after: list[Sample], names: MetricNames) -> TargetDelta:
    """One target's increases between two parsed scrapes; a restart (counters going down) counts from zero.

    A breaker state that is NaN counts as open: a gauge that says nothing does not vouch for anything.
    Public because the baseline judge accumulates the same deltas over a whole run.
    """
    buckets = bucket_delta(
        histogram_buckets(before, names.histogram), histogram_buckets(after, names.histogram)
    )
    requests = _series_delta(counter_series(before, names.requests), counter_series(after, names.requests))
    open_breakers = None
    if names.breaker:
        open_breakers = sum(1 for v in gauge_values(after, names.breaker) if not v < BREAKER_OPEN)
    return TargetDelta(
        buckets=buckets,
        by_status=sum_by_label(requests, names.status_label),
        memory_bytes=gauge_value(after, names.memory),
        open_breakers=open_breakers,
    )


def _scrape_errors(
    before: Mapping[str, str | BaseException], after: Mapping[str, str | BaseException]
) -> list[str]:
    errors = []
    for target in after:
        if not isinstance(after[target], str):
            # A FetchError already names the URL; its cause alone reads better after the target.
            errors.append(f"target {target} unreachable: {getattr(after[target], 'cause', after[target])}")
        elif target not in before:
            errors.append(f"target {target}: no baseline scrape")
        elif not isinstance(before[target], str):
            errors.append(f"target {target}: no baseline scrape (previous scrape failed: {before[target]})")
    return errors


def _success_rate(total: float, failed: float) -> float | None:
    if is_nan(total):
        return math.nan
    return 100.0 * (total - failed) / total if total > 0 else None


def measure_from_scrapes(
    before: Mapping[str, str | BaseException],
    after: Mapping[str, str | BaseException],
    thresholds: Thresholds,
    names: MetricNames | None = None,
) -> Measurement:
    """One measurement from two scrapes of every target's ``/metrics`` (target -> text, or the exception
    the scrape raised).

    Deltas are taken per target and per series (a restarted router counts from zero), then summed over
    targets *before* the quantile: the p95 of all new routers' requests, as
    ``histogram_quantile(0.95, sum by (le) (rate(...)))`` computes it, not an average of p95s. Success
    rate counts mirrored and live requests alike; memory is the largest resident set of any target.
    Any target unreachable or unparseable makes the whole measurement an Error.
    """
    names = names or MetricNames()
    if not after:
        return error_measurement(["no targets to measure"])
    errors = _scrape_errors(before, after)
    deltas: list[TargetDelta] = []
    if not errors:
        for target, text in after.items():
            try:
                deltas.append(
                    target_delta(parse_samples(str(before[target])), parse_samples(str(text)), names)
                )
            except MetricsParseError as exc:
                errors.append(f"target {target}: {exc}")
    if errors:
        return error_measurement(errors)

    p95_seconds = histogram_quantile(QUANTILE, sum_buckets(d.buckets for d in deltas))
    by_status: dict[str, float] = {}
    for delta in deltas:
        for status, count in delta.by_status.items():
            by_status[status] = by_status.get(status, 0.0) + count
    total = sum(by_status.values())
    failed = sum(by_status.get(status, 0.0) for status in names.failure_classes)
    memory = _worst([d.memory_bytes for d in deltas if d.memory_bytes is not None])
    breakers = [d.open_breakers for d in deltas if d.open_breakers is not None]
    return assess(
        thresholds,
        requests=total,
        p95_ms=None if p95_seconds is None else p95_seconds * 1000.0,
        success_rate=_success_rate(total, failed),
        memory_mb=None if memory is None else memory / MIB,
        breaker_open=sum(breakers) if names.breaker else None,
    )
