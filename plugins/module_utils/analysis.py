"""The SLA gate's decisions: what one measurement says about the new routers, and when a run of
measurements is decided. Pure functions, no I/O and no sleeping, so every rule is unit-tested.

Vocabulary and run semantics are Argo Rollouts' analysis (count, failureLimit, inconclusiveLimit,
consecutiveErrorLimit, consecutiveSuccessLimit), which SREs already know. The phase thresholds live here
and nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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

SUCCESSFUL = "Successful"
FAILED = "Failed"
INCONCLUSIVE = "Inconclusive"
ERROR = "Error"
RUNNING = "Running"
VERDICTS = (SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR)

NO_DATA_POLICIES = ("inconclusive", "fail", "pass")
QUANTILE = 0.95
# msgroute_breaker_state: 0 closed, 1 half-open, 2 open.
BREAKER_OPEN = 2.0
MIB = 1024 * 1024
# Below this many requests a p95 is the maximum of a handful of samples: not evidence either way.
DEFAULT_MIN_REQUESTS = 20
# rate() needs at least two samples in its window; 60 s gives four at a 15 s scrape interval.
MIN_WINDOW_SECONDS = 60

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_STATUS_CLASS = re.compile(r"^[A-Za-z0-9_]+$")


# --------------------------------------------------------------------------------------------- inputs


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
        if not _LABEL_NAME.match(self.status_label):
            raise ValueError(f"metric_names.status_label: {self.status_label!r} is not a label name")
        object.__setattr__(self, "failure_classes", tuple(self.failure_classes))
        bad = [c for c in self.failure_classes if not isinstance(c, str) or not _STATUS_CLASS.match(c)]
        if not self.failure_classes or bad:
            raise ValueError(
                f"metric_names.failure_classes: need classes like '5xx', got {self.failure_classes!r}"
            )


def _as_float(value: Any) -> float | None:
    """``value`` as a float, or None for anything that is not a number (booleans included)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _number(field_name: str, value: Any, *, minimum: float, maximum: float = math.inf) -> float:
    """A finite number in [minimum, maximum]; numeric strings are accepted because templating makes them."""
    number = _as_float(value)
    if number is None:
        raise ValueError(f"thresholds.{field_name}: expected a number, got {value!r}")
    if not math.isfinite(number) or not minimum <= number <= maximum:
        bounds = f">= {minimum:g}" if maximum == math.inf else f"between {minimum:g} and {maximum:g}"
        raise ValueError(f"thresholds.{field_name}: must be {bounds}, got {value!r}")
    return number


@dataclass(frozen=True)
class Thresholds:
    """What one measurement must satisfy. Values are coerced and checked on construction.

    ``max_memory_mb`` and ``max_open_breakers`` are not gated when None. ``no_data`` says what a
    missing value (metric not exposed, no observations) means: it is never silently a pass.
    """

    max_p95_ms: float
    min_success_rate: float
    max_memory_mb: float | None = None
    min_requests: int = DEFAULT_MIN_REQUESTS
    no_data: str = "inconclusive"
    max_open_breakers: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_p95_ms", _number("max_p95_ms", self.max_p95_ms, minimum=0))
        if self.max_p95_ms <= 0:
            raise ValueError(f"thresholds.max_p95_ms: must be > 0, got {self.max_p95_ms!r}")
        set_(
            self,
            "min_success_rate",
            _number("min_success_rate", self.min_success_rate, minimum=0, maximum=100),
        )
        if self.max_memory_mb is not None:
            set_(self, "max_memory_mb", _number("max_memory_mb", self.max_memory_mb, minimum=0))
            if self.max_memory_mb <= 0:
                raise ValueError(f"thresholds.max_memory_mb: must be > 0, got {self.max_memory_mb!r}")
        min_requests = _number("min_requests", self.min_requests, minimum=0)
        if min_requests != int(min_requests):
            raise ValueError(f"thresholds.min_requests: must be a whole number, got {self.min_requests!r}")
        set_(self, "min_requests", int(min_requests))
        if self.no_data not in NO_DATA_POLICIES:
            raise ValueError(
                f"thresholds.no_data: must be one of {', '.join(NO_DATA_POLICIES)}, got {self.no_data!r}"
            )
        if self.max_open_breakers is not None:
            breakers = _number("max_open_breakers", self.max_open_breakers, minimum=0)
            if breakers != int(breakers):
                raise ValueError(
                    f"thresholds.max_open_breakers: must be a whole number, got {self.max_open_breakers!r}"
                )
            set_(self, "max_open_breakers", int(breakers))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_MEMORY_MB = 128.0
PHASE_DEFAULTS: dict[str, Thresholds] = {
    "shadow": Thresholds(max_p95_ms=45, min_success_rate=98.5, max_memory_mb=_MEMORY_MB),
    "partial": Thresholds(max_p95_ms=48, min_success_rate=99.0, max_memory_mb=_MEMORY_MB),
    "full": Thresholds(max_p95_ms=50, min_success_rate=99.13, max_memory_mb=_MEMORY_MB),
}
PHASES = tuple(PHASE_DEFAULTS)
THRESHOLD_FIELDS = tuple(f.name for f in dataclasses.fields(Thresholds))


def resolve_thresholds(phase: str, overrides: Mapping[str, Any] | None = None) -> Thresholds:
    """The phase's defaults with the user's overrides applied; ValueError names the offending field.

    An explicit None for ``max_memory_mb`` or ``max_open_breakers`` switches that check off.
    """
    if phase not in PHASE_DEFAULTS:
        raise ValueError(f"phase: unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(THRESHOLD_FIELDS))
    if unknown:
        raise ValueError(
            f"thresholds.{unknown[0]}: unknown field; expected some of {', '.join(THRESHOLD_FIELDS)}"
        )
    for required in ("max_p95_ms", "min_success_rate", "min_requests", "no_data"):
        if required in overrides and overrides[required] is None:
            raise ValueError(f"thresholds.{required}: may not be null")
    return dataclasses.replace(PHASE_DEFAULTS[phase], **overrides)


def default_window(interval_seconds: float) -> str:
    """PromQL range for a measurement: the interval, but never so short that rate() sees one sample."""
    return f"{max(math.ceil(interval_seconds), MIN_WINDOW_SECONDS)}s"


# ------------------------------------------------------------------------------------- measurements


def _fmt(value: float, digits: int = 3) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def _fmt_pair(value: float, threshold: float) -> tuple[str, str]:
    """Both numbers with enough digits that a breach never reads as '99 % < threshold 99 %'."""
    digits = 3
    while digits < 9 and value != threshold and _fmt(value, digits) == _fmt(threshold, digits):
        digits += 1
    return _fmt(value, digits), _fmt(threshold, digits)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).isoformat(timespec="milliseconds")


def _rounded(value: float | None) -> float | int | None:
    if value is None:
        return None
    if float(value).is_integer():
        return int(value)
    return round(value, 3)


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable, rounded for humans reading a task result or rollback_decision.json."""
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "requests": _rounded(self.requests),
            "p95_ms": _rounded(self.p95_ms),
            "success_rate": _rounded(self.success_rate),
            "memory_mb": _rounded(self.memory_mb),
            "breaker_open": self.breaker_open,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


def error_measurement(reasons: Sequence[str]) -> Measurement:
    """A measurement that could not be taken (unreachable target, failed query)."""
    return Measurement(verdict=ERROR, reasons=list(reasons))


def _no_data(what: str, policy: str, failures: list[str], inconclusive: list[str]) -> None:
    if policy == "fail":
        failures.append(f"no data for {what} (no_data=fail)")
    elif policy == "inconclusive":
        inconclusive.append(f"no data for {what}")


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
    over a handful of requests is noise and must not promote (or revert) anything.
    """
    failures: list[str] = []
    inconclusive: list[str] = []
    t = thresholds
    if t.max_memory_mb is not None:
        if memory_mb is None:
            _no_data("memory", t.no_data, failures, inconclusive)
        elif memory_mb > t.max_memory_mb:
            value, limit = _fmt_pair(memory_mb, t.max_memory_mb)
            failures.append(f"memory {value} MB > threshold {limit} MB")
    # An absent breaker gauge means no breaker was ever created, hence none is open.
    if t.max_open_breakers is not None and breaker_open is not None and breaker_open > t.max_open_breakers:
        failures.append(f"open breakers {breaker_open} > threshold {t.max_open_breakers}")
    volume = requests or 0.0
    if volume < t.min_requests:
        inconclusive.append(f"request volume {_fmt(volume)} < minimum {t.min_requests} requests")
    else:
        if p95_ms is None:
            _no_data("p95 latency", t.no_data, failures, inconclusive)
        elif p95_ms > t.max_p95_ms:
            value, limit = _fmt_pair(p95_ms, t.max_p95_ms)
            failures.append(f"p95 latency {value} ms > threshold {limit} ms")
        if success_rate is None:
            _no_data("success rate", t.no_data, failures, inconclusive)
        elif success_rate < t.min_success_rate:
            value, limit = _fmt_pair(success_rate, t.min_success_rate)
            failures.append(f"success rate {value} % < threshold {limit} %")
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


def target_delta(before: list[Sample], after: list[Sample], names: MetricNames) -> TargetDelta:
    """One target's increases between two parsed scrapes; a restart (counters going down) counts from zero.

    Public because the baseline judge accumulates the same deltas over a whole run.
    """
    buckets = bucket_delta(
        histogram_buckets(before, names.histogram), histogram_buckets(after, names.histogram)
    )
    requests = _series_delta(counter_series(before, names.requests), counter_series(after, names.requests))
    open_breakers = None
    if names.breaker:
        open_breakers = sum(1 for v in gauge_values(after, names.breaker) if v >= BREAKER_OPEN)
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
    memory = [d.memory_bytes for d in deltas if d.memory_bytes is not None]
    breakers = [d.open_breakers for d in deltas if d.open_breakers is not None]
    return assess(
        thresholds,
        requests=total,
        p95_ms=None if p95_seconds is None else p95_seconds * 1000.0,
        success_rate=100.0 * (total - failed) / total if total > 0 else None,
        memory_mb=max(memory) / MIB if memory else None,
        breaker_open=sum(breakers) if names.breaker else None,
    )


# ----------------------------------------------------------------------------------------- prometheus


class PrometheusQueryError(ValueError):
    """Prometheus answered, but not with a usable instant vector."""


def _selector(labels: Mapping[str, str], *extra: str) -> str:
    parts = []
    for name in sorted(labels):
        if not _LABEL_NAME.match(str(name)):
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
    if not _DURATION.match(window):
        raise ValueError(f"window: {window!r} is not a PromQL duration such as 60s or 5m")
    sel = _selector(selector_labels)
    failed = "|".join(names.failure_classes)
    ok_sel = _selector(selector_labels, f'{names.status_label}!~"{failed}"')
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


def parse_prometheus_vector(json_body: Any) -> float | None:
    """The single value of an ``/api/v1/query`` answer (decoded JSON or its text).

    Empty result and NaN are None (no data); an error status or more than one series raises
    PrometheusQueryError, since the gate's queries always aggregate to one series.
    """
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
    data = json_body.get("data") or {}
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


def measure_from_prometheus(results: Mapping[str, float | None], thresholds: Thresholds) -> Measurement:
    """One measurement from the answers to ``prometheus_queries`` (None where the answer was empty).

    Units are converted to the thresholds' (s -> ms, ratio -> %, bytes -> MB). ``max()`` of the breaker
    state only says whether any breaker is open, so ``breaker_open`` is 1 or 0 here.
    """
    p95 = results.get("p95")
    success = results.get("success")
    memory = results.get("memory")
    breaker = results.get("breaker")
    return assess(
        thresholds,
        requests=results.get("requests"),
        p95_ms=None if p95 is None else p95 * 1000.0,
        success_rate=None if success is None else success * 100.0,
        memory_mb=None if memory is None else memory / MIB,
        breaker_open=None if breaker is None else int(breaker >= BREAKER_OPEN),
    )


# ------------------------------------------------------------------------------------------------ runs


def _whole(field_name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field_name}: must be a whole number >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class AnalysisRun:
    """How many measurements a run takes, how often, and how many bad ones it tolerates (Argo Rollouts'
    fields; ``interval`` and ``initial_delay`` in seconds).

    ``failure_limit`` -1 switches the failure limit off, which Argo allows only together with
    ``consecutive_success_limit``; 0 for ``consecutive_success_limit`` means "not used".
    """

    count: int = 3
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    consecutive_success_limit: int = 0
    interval: float = 10.0
    initial_delay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("interval", "initial_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{name}: must be a number of seconds >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        _whole("count", self.count, 1)
        _whole("failure_limit", self.failure_limit, -1)
        _whole("inconclusive_limit", self.inconclusive_limit, 0)
        _whole("consecutive_error_limit", self.consecutive_error_limit, 0)
        _whole("consecutive_success_limit", self.consecutive_success_limit, 0)
        if self.failure_limit < 0 and self.consecutive_success_limit == 0:
            raise ValueError("failure_limit: -1 (no failure limit) needs consecutive_success_limit > 0")
        if self.consecutive_success_limit > self.count:
            raise ValueError(
                f"consecutive_success_limit: {self.consecutive_success_limit} can never be reached in "
                f"count {self.count} measurements"
            )


@dataclass
class _Tally:
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    consecutive_successes: int = 0

    def add(self, verdict: str) -> None:
        """Argo's bookkeeping: errors do not count towards ``count``, they are retried."""
        if verdict == ERROR:
            self.errors += 1
            self.consecutive_errors += 1
            self.consecutive_successes = 0
            return
        if verdict not in VERDICTS:
            raise ValueError(f"measurement verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        self.count += 1
        self.consecutive_errors = 0
        if verdict == SUCCESSFUL:
            self.successful += 1
            self.consecutive_successes += 1
            return
        self.consecutive_successes = 0
        if verdict == FAILED:
            self.failed += 1
        else:
            self.inconclusive += 1


def _decide(tally: _Tally, run: AnalysisRun) -> tuple[str, str] | None:
    """The run's verdict after the latest measurement, or None while it must go on."""
    if run.failure_limit >= 0 and tally.failed > run.failure_limit:
        return FAILED, f"failed ({tally.failed}) > failure_limit ({run.failure_limit})"
    if tally.inconclusive > run.inconclusive_limit:
        return (
            INCONCLUSIVE,
            f"inconclusive ({tally.inconclusive}) > inconclusive_limit ({run.inconclusive_limit})",
        )
    if tally.consecutive_errors > run.consecutive_error_limit:
        return ERROR, (
            f"consecutive errors ({tally.consecutive_errors}) > consecutive_error_limit "
            f"({run.consecutive_error_limit})"
        )
    limit = run.consecutive_success_limit
    if limit and tally.consecutive_successes >= limit:
        return (
            SUCCESSFUL,
            f"consecutive successes ({tally.consecutive_successes}) reached consecutive_success_limit",
        )
    if tally.count < run.count:
        return None
    if limit and run.failure_limit >= 0:
        return INCONCLUSIVE, f"count ({run.count}) reached without {limit} consecutive successes"
    if limit:
        return FAILED, f"count ({run.count}) reached without {limit} consecutive successes"
    if tally.successful == 0:
        # Deliberately stricter than Argo: tolerated failures/inconclusives alone never pass a gate.
        return INCONCLUSIVE, f"count ({run.count}) reached without a single successful measurement"
    return SUCCESSFUL, f"{tally.successful} of {tally.count} measurements successful"


def _worst_values(measurements: Sequence[Measurement]) -> str:
    parts = []
    p95 = [m.p95_ms for m in measurements if m.p95_ms is not None]
    success = [m.success_rate for m in measurements if m.success_rate is not None]
    memory = [m.memory_mb for m in measurements if m.memory_mb is not None]
    if p95:
        parts.append(f"worst p95 latency {_fmt(max(p95))} ms")
    if success:
        parts.append(f"worst success rate {_fmt(min(success))} %")
    if memory:
        parts.append(f"peak memory {_fmt(max(memory))} MB")
    return ", ".join(parts)


def _message(verdict: str, why: str, measurements: Sequence[Measurement]) -> str:
    """One line: the verdict, the rule that decided it, and the measurements that made it so."""
    if verdict in (SUCCESSFUL, RUNNING):
        details = _worst_values(measurements)
        return f"{verdict}: {why}" + (f"; {details}" if details else "")
    relevant = {FAILED: (FAILED, INCONCLUSIVE), INCONCLUSIVE: (INCONCLUSIVE,), ERROR: (ERROR,)}[verdict]
    numbered = [(i, m) for i, m in enumerate(measurements, 1) if m.verdict in relevant and m.reasons]
    if verdict == FAILED and any(m.verdict == FAILED for _, m in numbered):
        numbered = [(i, m) for i, m in numbered if m.verdict == FAILED]
    if verdict == ERROR:
        numbered = numbered[-1:]  # consecutive errors repeat themselves; the latest one is enough
    details = "; ".join(f"measurement {i}/{len(measurements)}: {', '.join(m.reasons)}" for i, m in numbered)
    return f"{verdict}: {why}" + (f"; {details}" if details else "")


@dataclass
class RunResult:
    """A run's outcome; ``history`` is JSON-serialisable for task results and rollback_decision.json."""

    verdict: str
    message: str
    count: int
    successful: int
    failed: int
    inconclusive: int
    errors: int
    consecutive_errors: int
    history: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def evaluate_run(measurements: Sequence[Measurement], run: AnalysisRun) -> RunResult:
    """Replay measurements in order with Argo Rollouts' rules; the first decided verdict stands.

    Verdict is Running while undecided. Measurements after the deciding one are ignored, as a
    controller would never have taken them.
    """
    tally = _Tally()
    decision: tuple[str, str] | None = None
    considered = 0
    for measurement in measurements:
        tally.add(measurement.verdict)
        considered += 1
        decision = _decide(tally, run)
        if decision:
            break
    if decision is None:
        decision = (RUNNING, f"{tally.count} of {run.count} measurements taken")
    taken = list(measurements[:considered])
    verdict, why = decision
    return RunResult(
        verdict=verdict,
        message=_message(verdict, why, taken),
        count=tally.count,
        successful=tally.successful,
        failed=tally.failed,
        inconclusive=tally.inconclusive,
        errors=tally.errors,
        consecutive_errors=tally.consecutive_errors,
        history=[m.to_dict() for m in taken],
    )


def should_stop(measurements: Sequence[Measurement], run: AnalysisRun) -> bool:
    """True as soon as the run's verdict is decided, so the caller stops measuring (and sleeping)."""
    return evaluate_run(measurements, run).verdict != RUNNING
