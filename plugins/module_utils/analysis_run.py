"""The Argo Rollouts run rules: how many measurements a gate takes, which limits end it, and its verdict.

Vocabulary and semantics are Argo Rollouts' analysis (count, failureLimit, inconclusiveLimit,
consecutiveErrorLimit, consecutiveSuccessLimit), which SREs already know; so are the limits refused
because they could never trigger (Argo's ``ValidateMetric``). ``validate_phase_settings`` is the one
check of a phase's settings, shared by the pre-flight on the controller and by the gate itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.common.validation import check_type_float, check_type_int, check_type_str
from ansible_collections.msgroute.rollout.plugins.module_utils._numbers import fmt, strict_int
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    RUNNING,
    SUCCESSFUL,
    VERDICTS,
    Measurement,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.prometheus import check_window
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import (
    Thresholds,
    resolve_thresholds,
)


@dataclass(frozen=True)
class AnalysisRun:
    """How many measurements a run takes, how often, and how many bad ones it tolerates (Argo Rollouts'
    fields; ``interval`` and ``initial_delay`` in seconds).

    ``failure_limit`` -1 switches the failure limit off, which Argo allows only together with
    ``consecutive_success_limit``; 0 for ``consecutive_success_limit`` means "not used". Limits that
    could never trigger are refused as Argo refuses them: ``count`` must be at least
    ``failure_limit + consecutive_success_limit`` (``consecutive_success_limit`` alone when the failure
    limit is off) and at least ``inconclusive_limit``.
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
        strict_int("count", self.count, 1)
        strict_int("failure_limit", self.failure_limit, -1)
        strict_int("inconclusive_limit", self.inconclusive_limit, 0)
        strict_int("consecutive_error_limit", self.consecutive_error_limit, 0)
        strict_int("consecutive_success_limit", self.consecutive_success_limit, 0)
        if self.failure_limit < 0 and self.consecutive_success_limit == 0:
            raise ValueError("failure_limit: -1 (no failure limit) needs consecutive_success_limit > 0")
        if self.failure_limit >= 0 and self.count < self.failure_limit + self.consecutive_success_limit:
            raise ValueError(
                f"count: {self.count} must be >= failure_limit + consecutive_success_limit "
                f"({self.failure_limit} + {self.consecutive_success_limit}), "
                "or the limits can never be reached"
            )
        if self.count < self.consecutive_success_limit:
            raise ValueError(
                f"count: {self.count} must be >= consecutive_success_limit "
                f"({self.consecutive_success_limit}), or the streak can never be reached"
            )
        if self.count < self.inconclusive_limit:
            raise ValueError(
                f"count: {self.count} must be >= inconclusive_limit ({self.inconclusive_limit}), "
                "or the limit can never be reached"
            )


RUN_FIELDS = tuple(f.name for f in dataclasses.fields(AnalysisRun))
# The keys of an inventory's rollout_analysis.<phase>: the run fields and the Prometheus window.
ANALYSIS_FIELDS = (*RUN_FIELDS, "window")
_FLOAT_FIELDS = ("interval", "initial_delay")


def _converted(name: str, value: Any) -> Any:
    """The value as the module's argument spec converts it (int, float or str), so both agree."""
    check = check_type_int
    if name in _FLOAT_FIELDS:
        check = check_type_float
    elif name == "window":
        check = check_type_str
    try:
        return check(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from None


def run_settings(analysis: Mapping[str, Any] | None) -> tuple[AnalysisRun, str | None]:
    """The run and the PromQL window (None: the default) from a phase's analysis settings.

    Unset or null keys take the module's defaults; ValueError names the first offending setting.
    """
    if analysis is not None and not isinstance(analysis, Mapping):
        raise ValueError(f"analysis: expected a mapping of setting to value, got {analysis!r}")
    given = {key: value for key, value in (analysis or {}).items() if value is not None}
    unknown = sorted(set(given) - set(ANALYSIS_FIELDS))
    if unknown:
        raise ValueError(
            f"{unknown[0]}: unknown analysis setting; expected some of {', '.join(ANALYSIS_FIELDS)}"
        )
    converted = {key: _converted(key, value) for key, value in given.items()}
    window = converted.pop("window", None) or None  # "" is unset, as the module has always read it
    if window is not None:
        check_window(window)
    return AnalysisRun(**converted), window


def validate_phase_settings(
    phase: str, thresholds: Mapping[str, Any] | None = None, analysis: Mapping[str, Any] | None = None
) -> list[str]:
    """Every problem with one phase's gate settings, as the gate itself would refuse them; [] when fine.

    ``thresholds`` are an inventory's ``rollout_thresholds.<phase>``, ``analysis`` its
    ``rollout_analysis.<phase>`` (interval, count, initial_delay, failure_limit, inconclusive_limit,
    consecutive_error_limit, consecutive_success_limit, window). Each problem is one line starting with
    the setting it names, e.g. ``thresholds.max_p95_ms: must be > 0, got 0`` or ``count: 1 must be >=
    failure_limit + consecutive_success_limit (2 + 0), ...``: at most one for the thresholds and one for
    the analysis settings, since each is checked by the same constructor the gate uses. Pure; no I/O.
    """
    problems = []
    try:
        resolve_thresholds(phase, thresholds)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        run_settings(analysis)
    except ValueError as exc:
        problems.append(str(exc))
    return problems


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
        # Deliberately stricter than Argo (which says Successful): tolerated failures or inconclusive
        # measurements alone never pass a gate. Documented in the module and in docs/analysis.md.
        return INCONCLUSIVE, f"count ({run.count}) reached without a single successful measurement"
    return SUCCESSFUL, f"{tally.successful} of {tally.count} measurements successful"


def _worst_values(measurements: Sequence[Measurement]) -> str:
    parts = []
    p95 = [m.p95_ms for m in measurements if m.p95_ms is not None]
    success = [m.success_rate for m in measurements if m.success_rate is not None]
    memory = [m.memory_mb for m in measurements if m.memory_mb is not None]
    if p95:
        parts.append(f"worst p95 latency {fmt(max(p95))} ms")
    if success:
        parts.append(f"worst success rate {fmt(min(success))} %")
    if memory:
        parts.append(f"peak memory {fmt(max(memory))} MB")
    return ", ".join(parts)


def _message(verdict: str, why: str, measurements: Sequence[Measurement]) -> str:
    """One line: the verdict, the rule that decided it, and the measurements that made it so."""
    if verdict in (SUCCESSFUL, RUNNING):
        details = _worst_values(measurements)
        return f"{verdict}: {why}" + (f"; {details}" if details else "")
    relevant = {FAILED: (FAILED, INCONCLUSIVE), INCONCLUSIVE: (INCONCLUSIVE,), ERROR: (ERROR,)}[verdict]
    numbered = [(i, m) for i, m in enumerate(measurements, 1) if m.verdict in relevant and m.reasons]
    if verdict == FAILED and any(m.verdict == FAILED for _i, m in numbered):
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


# ------------------------------------------------------------------ one measurement per task: the progress


def max_measurements(run: AnalysisRun) -> int:
    """The most measurements a run can take, errors included: each counted one may follow up to
    ``consecutive_error_limit`` errors in a row (one more error ends the run), and ``count`` counted ones end
    it. The length of the loop that takes one measurement per task; the run ends earlier when decided."""
    return run.count * (run.consecutive_error_limit + 1)


@dataclass(frozen=True)
class Progress:
    """A run between two measurements, carried from one task to the next: Argo's tally so far and the
    verdict it gives (Running while undecided). ``taken`` counts errors too; ``count`` does not."""

    taken: int = 0
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    consecutive_successes: int = 0
    verdict: str = RUNNING
    why: str = ""

    @property
    def decided(self) -> bool:
        return self.verdict != RUNNING

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Progress:
        """The progress back from ``to_dict``; None or {} is a run not yet started."""
        known = {f.name for f in dataclasses.fields(cls)}
        given = {key: value for key, value in (data or {}).items() if key in known}
        try:
            progress = cls(**given)
            for name in known - {"verdict", "why"}:
                strict_int(f"progress.{name}", getattr(progress, name), 0)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"progress: not a run's progress ({exc})") from None
        if progress.verdict not in (RUNNING, *VERDICTS):
            raise ValueError(f"progress.verdict: {progress.verdict!r} is not Running or a verdict")
        return progress


def advance(progress: Progress, verdict: str, run: AnalysisRun) -> Progress:
    """The progress after one more measurement of ``verdict``, by the rules ``evaluate_run`` replays, so a
    run measured one task at a time decides exactly as a run measured in one task. Pure."""
    if progress.decided:
        raise ValueError(f"the run is already decided ({progress.verdict}); no measurement is due")
    tally = _Tally(
        **{f.name: getattr(progress, f.name) for f in dataclasses.fields(_Tally)},
    )
    tally.add(verdict)
    decision = _decide(tally, run) or (RUNNING, f"{tally.count} of {run.count} measurements taken")
    verdict, why = decision
    return Progress(taken=progress.taken + 1, **dataclasses.asdict(tally), verdict=verdict, why=why)


def _moment(timestamp: float | None) -> str:
    if timestamp is None:
        return "?"
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)  # noqa: UP017
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _figures(measurement: Measurement) -> str:
    parts = []
    if measurement.p95_ms is not None:
        parts.append(f"p95 {fmt(measurement.p95_ms)} ms")
    if measurement.success_rate is not None:
        parts.append(f"success {fmt(measurement.success_rate)} %")
    if measurement.memory_mb is not None:
        parts.append(f"memory {fmt(measurement.memory_mb)} MB")
    if measurement.requests is not None:
        parts.append(f"{fmt(measurement.requests)} requests")
    return ", ".join(parts) or "no figures"


def progress_line(measurement: Measurement, progress: Progress, run: AnalysisRun) -> str:
    """One measurement as an operator reads it while the run goes on, ``progress`` being the run after it:
    which of ``count`` (an Error is retried, not counted), when it ended, its figures and verdict (with the
    reasons when not Successful), the bad measurements so far against their limits, and the run's verdict
    so far, e.g. ``2/4 2026-12-02T10:05:12Z p95 31.4 ms, success 99.9 %, memory 61 MB, 1200 requests:
    Successful; so far failed 0 (failure_limit 0), inconclusive 0 (inconclusive_limit 0), errors in a row 0
    (consecutive_error_limit 4): Running``. Pure."""
    if measurement.verdict == ERROR:
        which = f"error {progress.consecutive_errors} in a row after {progress.count}/{run.count}"
    else:
        which = f"{progress.count}/{run.count}"
    said = measurement.verdict
    if measurement.verdict != SUCCESSFUL and measurement.reasons:
        said += f" ({', '.join(measurement.reasons)})"
    failure_limit = "off" if run.failure_limit < 0 else str(run.failure_limit)
    so_far = (
        f"failed {progress.failed} (failure_limit {failure_limit}), inconclusive {progress.inconclusive} "
        f"(inconclusive_limit {run.inconclusive_limit}), errors in a row {progress.consecutive_errors} "
        f"(consecutive_error_limit {run.consecutive_error_limit})"
    )
    if run.consecutive_success_limit:
        so_far += (
            f", successes in a row {progress.consecutive_successes} "
            f"(consecutive_success_limit {run.consecutive_success_limit})"
        )
    verdict = progress.verdict if not progress.decided else f"{progress.verdict}, {progress.why}"
    moment = _moment(measurement.finished_at)
    return f"{which} {moment} {_figures(measurement)}: {said}; so far {so_far}: {verdict}"


def _limits(run: AnalysisRun) -> str:
    """The run's Argo limits, in their own names (a failure limit of -1 is said as off)."""
    limits = [
        "failure_limit off" if run.failure_limit < 0 else f"failure_limit {run.failure_limit}",
        f"inconclusive_limit {run.inconclusive_limit}",
        f"consecutive_error_limit {run.consecutive_error_limit}",
    ]
    if run.consecutive_success_limit:
        limits.append(f"consecutive_success_limit {run.consecutive_success_limit}")
    return ", ".join(limits)


def _criteria(thresholds: Thresholds) -> tuple[str, str]:
    """What a measurement reads and what it must satisfy, e.g. ("p95 latency, success rate and memory",
    "p95 <= 48 ms, success >= 99 %, memory <= 128 MB")."""
    figures = ["p95 latency", "success rate"]
    limits = [f"p95 <= {fmt(thresholds.max_p95_ms)} ms", f"success >= {fmt(thresholds.min_success_rate)} %"]
    if thresholds.max_memory_mb is not None:
        figures.append("memory")
        limits.append(f"memory <= {fmt(thresholds.max_memory_mb)} MB")
    if thresholds.max_open_breakers is not None:
        figures.append("open breakers")
        limits.append(f"open breakers <= {thresholds.max_open_breakers}")
    return ", ".join(figures[:-1]) + " and " + figures[-1], ", ".join(limits)


def plan_message(run: AnalysisRun, thresholds: Thresholds, source: str, judge: str = "") -> str:
    """What a gate would do, said before (or instead of) doing it: the gate's line in check mode.

    ``source`` names where the figures would come from (``2 /metrics targets``, ``Prometheus at <url>, window
    60s``), ``judge`` the baseline comparison when there is one. Always ends with "not measured", and never
    names a verdict: nothing was measured. Pure; no I/O.
    """
    figures, limits = _criteria(thresholds)
    delay = f" after {fmt(run.initial_delay)} s" if run.initial_delay else ""
    times = "once" if run.count == 1 else f"{run.count} times"
    return (
        f"would measure {figures} of the new pool ({source}) every {fmt(run.interval)} s, {times}{delay}, "
        f"against {limits}, at least {thresholds.min_requests} requests a measurement ({_limits(run)})"
        + (f"; {judge}" if judge else "")
        + "; not measured"
    )
