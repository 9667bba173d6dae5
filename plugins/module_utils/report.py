"""The rollout report: what the results directory says about a run, as table rows, chart data, a text table
and an HTML page. Pure functions over the parsed JSON files, no I/O and no plotting, so every rule is
unit-tested; the charts are drawn by ``report_charts`` from the chart data made here.

Inputs are the files the rollout roles write into ``rollout_results_dir``:
``performance_report_<phase>_<weight>.json`` for every passed step and ``rollback_decision.json`` for the
last rollback (a failed gate, a failed step, the lb's guard seen by a step, or rollback.yml), each with the
measurements of ``Measurement.to_dict``; and the guard's records the lbs answer, since a guard rollback
happens with no playbook running and no file written.

Optional, shown only when present: a measurement's ``pool_requests`` (what each pool served, recorded by the
gate when the baseline judge is on) for the traffic share per pool; the guard records a step's rollback wrote
down (``guard`` in ``rollback_decision.json``); and a step report's ``shadow_comparison``, a JSON object shown
as it is (the shadow comparison of issue 13 is not built yet: the report invents no format for it).
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ansible_collections.msgroute.rollout.plugins.module_utils import guard_record
from ansible_collections.msgroute.rollout.plugins.module_utils._numbers import as_float

PHASE_ORDER = ("shadow", "partial", "full")
STEP_FILE = re.compile(r"^performance_report_(?P<phase>[a-z]+)_(?P<weight>\d+)\.json$")
ROLLBACK_FILE = "rollback_decision.json"
# A step report's optional shadow comparison (a JSON object), rendered as it is when present.
SHADOW_COMPARISON = "shadow_comparison"
MANUAL = "Manual"
GUARD = guard_record.VERDICT
# Rollbacks that are no step's failed gate: the passed steps stay as they were.
NOT_A_GATE = (MANUAL, GUARD)


class Figure(NamedTuple):
    """One of the figures charted and tabled per step: its measurement key, threshold key and direction."""

    key: str
    limit: str
    direction: str
    label: str
    unit: str


FIGURES = (
    Figure("p95_ms", "max_p95_ms", "max", "p95 latency", "ms"),
    Figure("success_rate", "min_success_rate", "min", "success rate", "%"),
    Figure("memory_mb", "max_memory_mb", "max", "memory", "MB"),
)
VERDICT_COLOURS = {
    "Successful": "#2e7d32",
    "Failed": "#c62828",
    "Inconclusive": "#f9a825",
    "Error": "#6a1b9a",
    MANUAL: "#1565c0",
    GUARD: "#e65100",
}


@dataclass(frozen=True)
class Step:
    """One gated step as the results directory records it."""

    phase: str
    weight: int
    verdict: str
    message: str = ""
    shadow_percent: int | None = None
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    measurements: Sequence[Mapping[str, Any]] = ()
    judge: Mapping[str, Any] | None = None
    time: str | None = None
    rolled_back: bool = False
    shadow_comparison: Mapping[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.phase} {self.share}"

    @property
    def share(self) -> str:
        """The step's traffic: the new pool's weight, or for shadow the percent mirrored to it."""
        if self.phase == "shadow":
            return f"mirror {self.shadow_percent}%" if self.shadow_percent else "mirror"
        return f"{self.weight}%"


@dataclass(frozen=True)
class Decision:
    """Where the run ended: ``promoted`` (the last step passed), ``rolled back`` or ``none`` (no step yet)."""

    outcome: str
    phase: str | None = None
    weight: int | None = None
    verdict: str | None = None
    reason: str = ""
    time: str | None = None

    def text(self) -> str:
        if self.outcome == "rolled back" and self.verdict == GUARD:
            share = "shadow" if self.phase == "shadow" else f"{self.phase} {self.weight}%"
            return f"{self.reason}, from {share} to legacy"
        if self.outcome == "rolled back":
            when = f" on {self.time}" if self.time else ""
            return (
                f"rolled back to legacy at {self.phase} {self.weight}%{when} ({self.verdict}): {self.reason}"
            )
        if self.outcome == "promoted":
            return f"promoted to {self.phase} {self.weight}% ({self.verdict})"
        return "no gated step recorded yet"


@dataclass(frozen=True)
class Run:
    """The steps of one version, in rollout order, and the decision."""

    version: str | None
    steps: tuple[Step, ...]
    decision: Decision
    guard: tuple[dict[str, Any], ...] = ()


def parse_time(value: Any) -> datetime.datetime | None:
    """An ISO 8601 time as the roles and the gate write it (``...+00:00`` or ``...Z``), as UTC; else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] if value.endswith("Z") else value
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)  # noqa: UP017 - modules also run on Python 3.9
    return moment


def _order(step: Step) -> tuple[int, int]:
    rank = PHASE_ORDER.index(step.phase) if step.phase in PHASE_ORDER else len(PHASE_ORDER)
    return rank, step.weight


def _weight(value: Any) -> int:
    number = as_float(value)
    return int(number) if number is not None else 0


def _step(data: Mapping[str, Any], rolled_back: bool = False) -> Step:
    judge = data.get("judge")
    comparison = data.get(SHADOW_COMPARISON)
    return Step(
        phase=str(data.get("phase", "unknown")),
        weight=_weight(data.get("weight")),
        shadow_percent=_weight(data.get("shadow_percent")) or None,
        verdict=str(data.get("verdict", "Error")),
        message=str(data.get("reason" if rolled_back else "message", "") or ""),
        thresholds=dict(data.get("thresholds") or {}),
        measurements=tuple(m for m in data.get("measurements") or () if isinstance(m, Mapping)),
        judge=dict(judge) if isinstance(judge, Mapping) and judge else None,
        time=data.get("time") if isinstance(data.get("time"), str) else None,
        rolled_back=rolled_back,
        shadow_comparison=dict(comparison) if isinstance(comparison, Mapping) and comparison else None,
    )


def _newest(steps: Sequence[Step]) -> datetime.datetime | None:
    times = [t for t in (parse_time(s.time) for s in steps) if t is not None]
    return max(times) if times else None


def guard_decision(guard: Any, version: str | None = None) -> Decision | None:
    """The decision of the lb's guard when one of its rollbacks stands (of ``version`` when given)."""
    standing = guard_record.active(guard, version)
    if not standing:
        return None
    first = standing[0]
    moment = guard_record.utc_time(first.get("at"))
    return Decision(
        "rolled back",
        str(first.get("phase") or "unknown"),
        guard_record.weight_before(first),
        GUARD,
        guard_record.reason(first),
        moment if parse_time(moment) else None,
    )


def guard_alerts(
    answered: Any, written: Any, version: str | None = None, superseded: bool = False
) -> list[dict[str, Any]]:
    """The guard's alerts of ``version`` (every version when None), oldest first: the records the lbs answer
    (``answered``, the module's ``guard``) and those a step's rollback wrote down (``written``, the ``guard``
    of ``rollback_decision.json``), once each (same lb, alert and time).

    Each names the lb, alert, value, threshold, time (UTC), the weights the guard took away and its
    ``state``: ``standing`` or ``cleared`` as the lb answers it, else ``written down with the rollback``, or,
    when steps passed after that rollback (``superseded``), ``earlier: steps passed after it``.
    """
    seen: set[tuple[str, str, float | None]] = set()
    alerts = []
    try:
        recorded = guard_record.records(written)
    except ValueError:
        recorded = []  # a file's malformed record is not worth failing the summary for
    sources = ((guard_record.records(answered), "lb"), (recorded, ROLLBACK_FILE))
    for found, source in sources:
        for record in found:
            if version is not None and str(record.get("version")) != str(version):
                continue
            key = (str(record.get("lb")), str(record.get("alert")), as_float(record.get("at")))
            if key in seen:
                continue
            seen.add(key)
            if source == "lb":
                state = "standing" if guard_record.is_active(record) else "cleared"
            else:
                state = "earlier: steps passed after it" if superseded else "written down with the rollback"
            before = record.get("weights_before")
            before = before if isinstance(before, Mapping) else {}
            alerts.append(
                {
                    "lb": record.get("lb"),
                    "alert": record.get("alert"),
                    "value": record.get("value"),
                    "threshold": record.get("threshold"),
                    "summary": record.get("summary"),
                    "phase": record.get("phase"),
                    "at": as_float(record.get("at")),
                    "time": guard_record.utc_time(record.get("at")),
                    "new_weight_before": as_float(before.get("new_weight")),
                    "shadow_percent_before": as_float(before.get("shadow_percent")),
                    "state": state,
                    "source": source,
                }
            )
    return sorted(alerts, key=lambda a: a["at"] if a["at"] is not None else 0.0)


def collect(files: Mapping[str, Any], version: str | None = None, guard: Any = None) -> Run:
    """The run the results files describe (file name -> parsed JSON), keeping only ``version`` when given.

    A rollback decision counts when no passed step was recorded after it (an older rollback that a later
    run superseded is left out). A gate or step that failed adds its step, marked rolled back, with the
    failed gate's measurements; a manual rollback (rollback.yml) or one by the lb's guard leaves the passed
    steps as they are. A guard rollback that stands (``guard``: the records the lbs answer) is the decision:
    no shadow run has acknowledged it yet.
    """
    passed: dict[tuple[str, int], Step] = {}
    rollback: Step | None = None
    written: Any = None
    for name, data in sorted(files.items()):
        if not isinstance(data, Mapping) or (version is not None and str(data.get("version")) != version):
            continue
        if STEP_FILE.match(name):
            step = _step(data)
            passed[(step.phase, step.weight)] = step
        elif name == ROLLBACK_FILE and data.get("decision") == "rollback":
            rollback = _step(data, rolled_back=True)
            written = data.get("guard")
    steps = sorted(passed.values(), key=_order)
    rollback_time = parse_time(rollback.time) if rollback else None
    newest = _newest(steps)
    counts = rollback is not None and (newest is None or rollback_time is None or rollback_time >= newest)
    if rollback is not None and counts:
        if rollback.verdict not in NOT_A_GATE:
            steps = [s for s in steps if (s.phase, s.weight) != (rollback.phase, rollback.weight)]
            steps.append(rollback)
        decision = Decision(
            "rolled back", rollback.phase, rollback.weight, rollback.verdict, rollback.message, rollback.time
        )
    elif steps:
        last = steps[-1]
        decision = Decision("promoted", last.phase, last.weight, last.verdict)
    else:
        decision = Decision("none")
    alerts = guard_alerts(guard, written, version, superseded=not counts)
    return Run(
        version=version,
        steps=tuple(steps),
        decision=guard_decision(guard, version) or decision,
        guard=tuple(alerts),
    )


def _figure(measurements: Sequence[Mapping[str, Any]], key: str) -> list[float | None]:
    return [as_float(m.get(key)) for m in measurements]


def worst(values: Sequence[float | None], direction: str) -> float | None:
    """The worst measured value: largest against a ``max`` threshold, smallest against a ``min`` one."""
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None
    return max(numbers) if direction == "max" else min(numbers)


def breached(value: float | None, limit: float | None, direction: str) -> bool:
    if value is None or limit is None:
        return False
    return value > limit if direction == "max" else value < limit


def duration_seconds(measurements: Sequence[Mapping[str, Any]]) -> float | None:
    """From the first measurement's start to the last one's end."""
    starts = [t for t in (parse_time(m.get("started_at")) for m in measurements) if t is not None]
    ends = [t for t in (parse_time(m.get("finished_at")) for m in measurements) if t is not None]
    if not starts or not ends:
        return None
    return max(0.0, (max(ends) - min(starts)).total_seconds())


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _pool_counts(value: Any) -> tuple[float, float] | None:
    """(new, legacy) requests of a ``pool_requests``-shaped mapping, or None unless both are numbers >= 0."""
    if not isinstance(value, Mapping):
        return None
    new, legacy = as_float(value.get("new")), as_float(value.get("legacy"))
    if new is None or legacy is None or new < 0 or legacy < 0:
        return None
    return new, legacy


def new_share(pool_requests: Any, phase: str) -> float | None:
    """The new pool's share in %, from what each pool served (``{"new": n, "legacy": l}``): of the live
    requests (n / (n + l)), or in shadow, where legacy answers every live request and the new pool only the
    mirrored copies, the copies as a share of the live requests (n / l). None without both counts or traffic.
    """
    counts = _pool_counts(pool_requests)
    if counts is None:
        return None
    new, legacy = counts
    total = legacy if phase == "shadow" else new + legacy
    return 100.0 * new / total if total > 0 else None


def _judge_counts(judge: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """Both pools' requests over the whole step as the baseline judge counted them, when it compared legacy at
    the same moments (``baseline_period`` during; ``before`` counts legacy before the step)."""
    if not judge or (judge.get("settings") or {}).get("baseline_period", "during") != "during":
        return None
    for metric in (judge.get("metrics") or {}).values():
        counts = _pool_counts(metric.get("requests")) if isinstance(metric, Mapping) else None
        if counts is not None:
            return counts
    return None


def step_traffic(step: Step) -> dict[str, Any]:
    """What each pool served during the step: ``kind`` (``live``: the new pool's share of live requests;
    ``mirrored``: shadow's copies as a share of live requests), ``configured`` (the step's weight or shadow
    percent), ``measured`` (the share per measurement, None where not recorded), ``requests`` (both pools
    over the step) and ``share`` over the step, with its ``source``: ``measurements`` (every measurement's
    ``pool_requests``), ``judge`` (the baseline judge's totals) or None (not recorded: only the configured
    split is known)."""
    shadow = step.phase == "shadow"
    measured = [new_share(m.get("pool_requests"), step.phase) for m in step.measurements]
    counts = [_pool_counts(m.get("pool_requests")) for m in step.measurements]
    totals: tuple[float, float] | None = None
    source = None
    if counts and all(c is not None for c in counts):
        totals = (sum(c[0] for c in counts if c), sum(c[1] for c in counts if c))
        source = "measurements"
    elif _judge_counts(step.judge) is not None:
        totals, source = _judge_counts(step.judge), "judge"
    requests = {"new": totals[0], "legacy": totals[1]} if totals else None
    return {
        "kind": "mirrored" if shadow else "live",
        "configured": (step.shadow_percent or 0) if shadow else step.weight,
        "measured": measured,
        "requests": requests,
        "share": new_share(requests, step.phase),
        "source": source,
    }


def traffic_text(traffic: Mapping[str, Any]) -> str:
    """One line on what each pool served, e.g. ``new pool 49.9 % of live requests, legacy 50.1 % (weight
    50 %; 3 measurements)``."""
    configured = format_number(as_float(traffic["configured"]))
    share = traffic["share"]
    where = {"measurements": "over the measurements", "judge": "over the step, the baseline judge's count"}
    if share is None:
        setting = "mirror" if traffic["kind"] == "mirrored" else "weight"
        return f"traffic share per pool: not recorded ({setting} {configured} %)"
    if traffic["kind"] == "mirrored":
        return (
            f"mirrored to the new pool: {format_number(share)} % of live requests; legacy answered every "
            f"live request (mirror {configured} %; {where[traffic['source']]})"
        )
    return (
        f"new pool {format_number(share)} % of live requests, legacy {format_number(100.0 - share)} % "
        f"(weight {configured} %; {where[traffic['source']]})"
    )


def step_rows(run: Run) -> list[dict[str, Any]]:
    """One row per step: verdict, each figure's worst value against its threshold, measurements, duration."""
    rows = []
    for step in run.steps:
        row: dict[str, Any] = {
            "step": step.label,
            "phase": step.phase,
            "weight": step.weight,
            "share": step.share,
            "verdict": step.verdict,
            "rolled_back": step.rolled_back,
            "measurements": len(step.measurements),
            "duration_s": duration_seconds(step.measurements),
            "message": step.message,
        }
        for fig in FIGURES:
            value = worst(_figure(step.measurements, fig.key), fig.direction)
            limit = as_float(step.thresholds.get(fig.limit))
            row[fig.key] = {
                "worst": value,
                "threshold": limit,
                "breached": breached(value, limit, fig.direction),
            }
        if step.judge is not None:
            row["judge"] = {"verdict": step.judge.get("verdict"), "score": as_float(step.judge.get("score"))}
        traffic = step_traffic(step)
        row["traffic"] = {k: traffic[k] for k in ("kind", "configured", "share", "source")}
        rows.append(row)
    return rows


def _figure_cell(figure: Mapping[str, Any]) -> str:
    """``41.2/48`` within, ``83.1!/48`` breached, ``-/48`` not measured; ``/-`` when not gated."""
    limit = format_number(figure["threshold"]) if figure["threshold"] is not None else "-"
    return f"{format_number(figure['worst'])}{'!' if figure['breached'] else ''}/{limit}"


TABLE_HEADERS = ("PHASE", "WEIGHT", "VERDICT", "P95 ms", "SUCCESS %", "MEMORY MB", "N", "DURATION")


def text_table(rows: Sequence[Mapping[str, Any]], decision: Decision, report: str | None = None) -> str:
    """The summary printed at the end of a playbook: one line per step, the decision, where the report is.

    Figures read ``worst/threshold``; ``!`` marks a breach. Worst is the largest p95 and memory and the
    smallest success rate of the step's measurements.
    """
    lines = [list(TABLE_HEADERS)]
    for row in rows:
        verdict = f"{row['verdict']}{' (rolled back)' if row['rolled_back'] else ''}"
        cells = [row["phase"], row["share"], verdict]
        cells += [_figure_cell(row[fig.key]) for fig in FIGURES]
        cells += [str(row["measurements"]), format_duration(row["duration_s"])]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADERS))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    text.append("(no gated step recorded)" if not rows else "(figures: worst/threshold; ! marks a breach)")
    text.append(f"DECISION: {decision.text()}")
    if report:
        text.append(f"REPORT: {report}")
    return "\n".join(text)


def chart_data(step: Step) -> dict[str, Any]:
    """What one step's chart shows: the traffic share per pool (``step_traffic``: per measurement, over the
    step, and the configured split), per figure the measured series and its threshold, the verdict of each
    measurement, and for a rolled-back step the moment (seconds since the first measurement) and reason.

    x is seconds from the first measurement's start to each measurement's end; measurements without times
    are placed one interval apart by their index.
    """
    starts = [parse_time(m.get("started_at")) for m in step.measurements]
    ends = [parse_time(m.get("finished_at")) for m in step.measurements]
    origin = min((t for t in starts + ends if t is not None), default=None)
    x: list[float] = []
    for index, end in enumerate(ends):
        x.append(
            (end - origin).total_seconds() if end is not None and origin is not None else float(index + 1)
        )
    figures = {}
    for fig in FIGURES:
        figures[fig.key] = {
            "label": fig.label,
            "unit": fig.unit,
            "direction": fig.direction,
            "values": _figure(step.measurements, fig.key),
            "threshold": as_float(step.thresholds.get(fig.limit)),
        }
    traffic = step_traffic(step)
    rollback = None
    if step.rolled_back:
        moment = parse_time(step.time)
        at = (moment - origin).total_seconds() if moment is not None and origin is not None else None
        rollback = {
            "at": at if at is None or at >= 0 else None,
            "reason": step.message,
            "verdict": step.verdict,
        }
    return {
        "step": step.label,
        "x": x,
        "verdicts": [str(m.get("verdict", "")) for m in step.measurements],
        "figures": figures,
        "traffic": {
            "kind": traffic["kind"],
            "values": traffic["measured"],
            "configured": as_float(traffic["configured"]),
            "share": traffic["share"],
            "source": traffic["source"],
        },
        "rollback": rollback,
    }


def timeline_data(run: Run) -> dict[str, Any]:
    """The run on one time axis: per step its span, the new pool's share of live traffic (the step's weight;
    shadow mirrors and serves nothing live) and verdict, and the rollback moment if any."""
    spans = []
    for step in run.steps:
        times = [parse_time(m.get(k)) for m in step.measurements for k in ("started_at", "finished_at")]
        known = [t for t in times if t is not None]
        spans.append(
            {
                "step": step.label,
                "start": min(known).isoformat() if known else None,
                "end": max(known).isoformat() if known else None,
                "new_share": 0 if step.phase == "shadow" else step.weight,
                "verdict": step.verdict,
                "rolled_back": step.rolled_back,
            }
        )
    rollback = None
    if run.decision.outcome == "rolled back":
        moment = parse_time(run.decision.time)
        rollback = {"at": moment.isoformat() if moment else None, "reason": run.decision.reason}
    return {"spans": spans, "rollback": rollback, "decision": run.decision.text()}


def page_data(run: Run, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the page shows, as data: embedded in it for tools and tests to read back."""
    return {
        "version": run.version,
        "decision": {
            "outcome": run.decision.outcome,
            "phase": run.decision.phase,
            "weight": run.decision.weight,
            "verdict": run.decision.verdict,
            "reason": run.decision.reason,
            "time": run.decision.time,
            "text": run.decision.text(),
        },
        "rows": list(rows),
        "steps": [
            {
                "step": s.label,
                "thresholds": dict(s.thresholds),
                "judge": s.judge,
                "message": s.message,
                "traffic": step_traffic(s),
                SHADOW_COMPARISON: s.shadow_comparison,
            }
            for s in run.steps
        ],
        "guard": list(run.guard),
    }


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}.breach{color:#c62828;font-weight:bold}.decision{font-size:1.2em;padding:.6em;
border-left:6px solid #888;background:#fafafa}.rolled{border-color:#c62828}.promoted{border-color:#2e7d32}
img{max-width:100%;border:1px solid #eee}.verdict{font-weight:bold}dl{margin:.5em 0 .5em 1em}
dt{font-weight:bold}dd{margin:0 0 .3em 1em}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _img(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _verdict(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#444")
    return f'<span class="verdict" style="color:{colour}">{_e(verdict)}</span>'


def _summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in TABLE_HEADERS)
    body = []
    for row in rows:
        cells = [
            _e(row["phase"]),
            _e(row["share"]),
            _verdict(row["verdict"]) + (" (rolled back)" if row["rolled_back"] else ""),
        ]
        for fig in FIGURES:
            figure = row[fig.key]
            css = ' class="breach"' if figure["breached"] else ""
            cells.append(f"<span{css}>{_e(_figure_cell(figure))}</span>")
        cells += [_e(row["measurements"]), _e(format_duration(row["duration_s"]))]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _pools_cell(pool_requests: Any, phase: str) -> str:
    """``400 / 402 (49.9 %)``: what each pool served and the new pool's share; ``-`` when not recorded."""
    counts = _pool_counts(pool_requests)
    if counts is None:
        return "-"
    share = new_share(pool_requests, phase)
    percent = f" ({format_number(share)} %)" if share is not None else ""
    return f"{format_number(counts[0])} / {format_number(counts[1])}{percent}"


def _measurement_table(step: Step) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "#",
            "end",
            "verdict",
            "p95 ms",
            "success %",
            "memory MB",
            "requests",
            "new / legacy",
            "reasons",
        )
    )
    body = []
    for index, m in enumerate(step.measurements, start=1):
        cells = [
            _e(index),
            _e(m.get("finished_at")),
            _verdict(str(m.get("verdict", ""))),
            _e(format_number(as_float(m.get("p95_ms")))),
            _e(format_number(as_float(m.get("success_rate")))),
            _e(format_number(as_float(m.get("memory_mb")))),
            _e(format_number(as_float(m.get("requests")))),
            _e(_pools_cell(m.get("pool_requests"), step.phase)),
            _e("; ".join(str(r) for r in m.get("reasons") or ())),
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _judge(judge: Mapping[str, Any] | None) -> str:
    if not judge:
        return ""
    metrics = judge.get("metrics") or {}
    items = "".join(
        f"<li>{_e(name)}: {_e(m.get('classification'))} - {_e(m.get('reason'))}</li>"
        for name, m in metrics.items()
        if isinstance(m, Mapping)
    )
    return (
        f"<h4>Baseline judge: {_verdict(str(judge.get('verdict')))}, score {_e(judge.get('score'))}</h4>"
        f"<p>{_e(judge.get('summary'))}</p><ul>{items}</ul>"
    )


GUARD_HEADERS = ("when (UTC)", "lb", "alert", "value", "threshold", "weights before", "state", "summary")


def _before(alert: Mapping[str, Any]) -> str:
    """``new 25 %, mirror 0 %``: the weights the guard took away; ``-`` when the record does not say."""
    parts = [
        f"{name} {format_number(alert[key])} %"
        for name, key in (("new", "new_weight_before"), ("mirror", "shadow_percent_before"))
        if alert.get(key) is not None
    ]
    return ", ".join(parts) or "-"


def guard_section(alerts: Sequence[Mapping[str, Any]]) -> str:
    """The guard's alerts as a table (``guard_alerts``); nothing when there is none."""
    if not alerts:
        return ""
    head = "".join(f"<th>{_e(h)}</th>" for h in GUARD_HEADERS)
    body = []
    for alert in alerts:
        cells = [
            alert["time"],
            alert["lb"],
            alert["alert"],
            alert["value"],
            alert["threshold"],
            _before(alert),
            alert["state"],
            alert["summary"],
        ]
        body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return (
        '<section id="guard"><h2>Guard alerts</h2><p>Rollbacks the always-on guard in the lbs made '
        "(docs/guard.md): the alert, its value against the trigger, when, and the weights it took away.</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table></section>"
    )


def _value_html(value: Any, depth: int = 0) -> str:
    """Any JSON value as HTML, as it is: an object as a definition list, a list of objects as a table, other
    lists comma-separated; escaped, nested at most 4 deep (deeper values are shown as JSON text)."""
    if depth >= 4:
        return _e(json.dumps(value, sort_keys=True))
    if isinstance(value, Mapping):
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_value_html(v, depth + 1)}</dd>" for k, v in value.items())
        return f"<dl>{items}</dl>"
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        columns = list(dict.fromkeys(k for v in value for k in v))
        head = "".join(f"<th>{_e(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_value_html(v.get(c), depth + 1)}</td>" for c in columns) + "</tr>"
            for v in value
        )
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(value, list):
        return ", ".join(_value_html(v, depth + 1) for v in value)
    return _e(value)


def shadow_comparison_section(step: Step) -> str:
    """The step report's ``shadow_comparison`` as it is (issue 13 defines its content); nothing without it."""
    if not step.shadow_comparison:
        return ""
    content = _value_html(step.shadow_comparison)
    return f'<div class="shadow-comparison"><h3>Shadow comparison</h3>{content}</div>'


def _thresholds(step: Step) -> str:
    if not step.thresholds:
        return "<p>thresholds: not recorded</p>"
    text = ", ".join(f"{k} {v}" for k, v in step.thresholds.items() if v is not None)
    return f"<p>thresholds: {_e(text)}</p>"


def html_page(
    run: Run,
    rows: Sequence[Mapping[str, Any]],
    step_charts: Mapping[str, bytes],
    timeline: bytes | None,
    title: str = "msgroute rollout report",
) -> str:
    """The self-contained report page: charts inline as base64 PNG, no script or style from the network.

    ``step_charts`` maps a step label to its PNG. The page data (``page_data``) is embedded as JSON.
    """
    decision = run.decision
    css = {"rolled back": "rolled", "promoted": "promoted"}.get(decision.outcome, "")
    sections = []
    for step in run.steps:
        chart = step_charts.get(step.label)
        rollback = ""
        if step.rolled_back:
            rollback = f'<p class="breach">Rolled back at {_e(step.time)}: {_e(step.message)}</p>'
        sections.append(
            f'<section id="step-{_e(step.phase)}-{step.weight}">'
            f"<h2>{_e(step.label)}: {_verdict(step.verdict)}</h2>"
            f"<p>{_e(step.message)}</p>{rollback}{_thresholds(step)}"
            f'<p class="traffic">{_e(traffic_text(step_traffic(step)))}</p>'
            f"{_img(chart, 'charts of ' + step.label) if chart else '<p>no measurement to chart</p>'}"
            f"{_judge(step.judge)}{shadow_comparison_section(step)}{_measurement_table(step)}</section>"
        )
    data = json.dumps(page_data(run, rows), sort_keys=True).replace("</", "<\\/")
    version = f" {run.version}" if run.version else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}{_e(version)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}{_e(version)}</h1>"
        f'<p class="decision {css}">Decision: {_e(decision.text())}</p>'
        f"{_summary_table(rows)}"
        f"{_img(timeline, 'timeline of the rollout') if timeline else ''}"
        f"{guard_section(run.guard)}"
        f"{''.join(sections)}"
        f'<script type="application/json" id="report-data">{data}</script>'
        "</body></html>\n"
    )
