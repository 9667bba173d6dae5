"""The rollout report's charts, drawn with matplotlib's Agg backend (no display, no network) from the chart
data of ``report``; each function returns PNG bytes.

Kept apart from ``report`` so the table and page logic import without matplotlib; the module answers with
``missing_required_lib('matplotlib')`` when it is missing.
"""

from __future__ import annotations

import datetime
import io
import textwrap
import traceback
from collections.abc import Mapping
from typing import Any

try:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
except ImportError:
    HAS_MATPLOTLIB = False
    MATPLOTLIB_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_MATPLOTLIB = True
    MATPLOTLIB_IMPORT_ERROR = None

from ansible_collections.msgroute.rollout.plugins.module_utils.report import VERDICT_COLOURS, parse_time

DPI = 100
# The charts' paper: a tint the page never uses, so a screenshot shows where a chart painted.
PAPER = "#f7f7f2"
# No "Software" stamp: the same results give the same bytes, so a re-run reports no change.
PNG_METADATA = {"Software": None}


def _wrap(text: str, width: int = 110, lines: int = 3) -> str:
    return "\n".join(textwrap.wrap(text, width, max_lines=lines, placeholder=" ..."))


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA, facecolor=PAPER)
    return buffer.getvalue()


def _reference(ax: Any, level: float, colour: str, style: str, label: str) -> None:
    """A labelled horizontal reference line: a threshold (dashed) or the configured split (dotted)."""
    ax.axhline(level, color=colour, linestyle=style, linewidth=1.2, label=label)


NEW_POOL = "#1565c0"
LEGACY_POOL = "#8d6e63"


def traffic_axes(ax: Any, x: list[float], traffic: Mapping[str, Any]) -> None:
    """The traffic share per pool on one axes: per measurement the new pool's share of live requests and
    legacy's (or, in shadow, the copies mirrored to the new pool as a share of live requests), the share over
    the step when only that was recorded (the judge's count), and the configured split (dotted)."""
    mirrored = traffic["kind"] == "mirrored"
    points = [(xi, v) for xi, v in zip(x, traffic["values"], strict=True) if v is not None]
    if points:
        xs, shares = [p[0] for p in points], [p[1] for p in points]
        if not mirrored:
            legacy = [100.0 - v for v in shares]
            ax.plot(xs, legacy, color=LEGACY_POOL, marker="o", markersize=4, label="legacy")
        # Drawn last: at 50 % the new pool's line is the one seen.
        ax.plot(xs, shares, color=NEW_POOL, marker="o", markersize=4, label="mirrored" if mirrored else "new")
    elif traffic["share"] is not None:
        # Only the whole step's count (the judge's): one level per pool across the step.
        share = traffic["share"]
        name = "mirrored" if mirrored else "new"
        if not mirrored:
            ax.axhline(
                100.0 - share, color=LEGACY_POOL, linewidth=2, label=f"legacy {100.0 - share:.1f}, whole step"
            )
        ax.axhline(share, color=NEW_POOL, linewidth=2, label=f"{name} {share:.1f}, whole step")
    else:
        ax.text(
            0.5,
            0.5,
            "pool shares not recorded",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="#888888",
        )
    if traffic["configured"] is not None:
        word = "mirror" if mirrored else "weight"
        _reference(ax, traffic["configured"], "#555555", ":", f"{word} {traffic['configured']:g}")
    ax.set_ylim(0, 105)
    ax.legend(loc="center left", fontsize=8)
    ax.set_ylabel("mirrored, % of live" if mirrored else "% of live requests", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.set_gid("traffic")


def step_chart(chart: Mapping[str, Any]) -> bytes:
    """One step: the traffic share per pool (``traffic_axes``), then p95, success rate and memory over the
    measurements, each against its threshold (dashed), each point coloured by its verdict, and the rollback
    moment when the step was rolled back."""
    figures = chart["figures"]
    figure = Figure(figsize=(9, 8), layout="constrained", facecolor=PAPER)
    axes = figure.subplots(len(figures) + 1, 1, sharex=True, height_ratios=[0.8] + [1] * len(figures))
    x = chart["x"]
    colours = [VERDICT_COLOURS.get(v, "#444444") for v in chart["verdicts"]]
    rollback = chart.get("rollback")
    traffic_axes(axes[0], x, chart["traffic"])
    if rollback and rollback.get("at") is not None:
        axes[0].axvline(rollback["at"], color="#c62828", linewidth=2, alpha=0.6)
    for ax, (key, data) in zip(axes[1:], figures.items(), strict=True):
        points = [(xi, v, c) for xi, v, c in zip(x, data["values"], colours, strict=True) if v is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], color="#555555", linewidth=1, zorder=1)
            ax.scatter(
                [p[0] for p in points], [p[1] for p in points], c=[p[2] for p in points], s=28, zorder=2
            )
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="#888888")
        if data["threshold"] is not None:
            word = "max" if data["direction"] == "max" else "min"
            _reference(ax, data["threshold"], "#c62828", "--", f"{word} {data['threshold']:g}")
            ax.legend(loc="upper left", fontsize=8)
        if rollback and rollback.get("at") is not None:
            ax.axvline(rollback["at"], color="#c62828", linewidth=2, alpha=0.6)
            if ax is axes[1]:
                ax.annotate(
                    "rollback",
                    (rollback["at"], 1),
                    xycoords=("data", "axes fraction"),
                    xytext=(-4, -12),
                    textcoords="offset points",
                    ha="right",
                    fontsize=8,
                    color="#c62828",
                )
        ax.set_ylabel(f"{data['label']} ({data['unit']})", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.set_gid(key)
    axes[-1].set_xlabel("seconds since the step's first measurement")
    title = chart["step"]
    if rollback:
        title += f" - rolled back ({rollback['verdict']}): {rollback['reason']}"
    figure.suptitle(_wrap(title), fontsize=10)
    return _png(figure)


def timeline_chart(timeline: Mapping[str, Any]) -> bytes:
    """The whole run: the new pool's share of live traffic over time, one bar per step coloured by its
    verdict, and the rollback moment and reason."""
    figure = Figure(figsize=(10, 3.6), layout="constrained", facecolor=PAPER)
    ax = figure.subplots()
    spans = [s for s in timeline["spans"] if s["start"] and s["end"]]
    labelled = set()
    for span in spans:
        start, end = parse_time(span["start"]), parse_time(span["end"])
        width = max((end - start).total_seconds(), 1.0) / 86400.0
        colour = VERDICT_COLOURS.get(span["verdict"], "#444444")
        label = span["verdict"] if span["verdict"] not in labelled else None
        labelled.add(span["verdict"])
        ax.bar(
            start, max(span["new_share"], 2), width=width, align="edge", color=colour, alpha=0.8, label=label
        )
        ax.annotate(
            span["step"],
            (start, max(span["new_share"], 2)),
            fontsize=8,
            xytext=(0, 3),
            textcoords="offset points",
        )
    rollback = timeline.get("rollback")
    if rollback and rollback.get("at"):
        moment = parse_time(rollback["at"])
        ax.axvline(moment, color="#c62828", linewidth=2)
        ax.annotate(
            "rollback",
            (moment, 97),
            xytext=(-4, 0),
            textcoords="offset points",
            fontsize=8,
            color="#c62828",
            ha="right",
            va="top",
        )
    if not spans:
        ax.text(0.5, 0.5, "no measurement recorded", transform=ax.transAxes, ha="center", va="center")
        ax.set_xlim(datetime.datetime(2000, 1, 1), datetime.datetime(2000, 1, 2))
    ax.set_ylim(0, 105)
    ax.set_ylabel("new pool, % of live traffic", fontsize=9)
    ax.set_title(_wrap(timeline["decision"]), fontsize=9)
    ax.grid(True, alpha=0.3)
    if labelled:
        ax.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    return _png(figure)
