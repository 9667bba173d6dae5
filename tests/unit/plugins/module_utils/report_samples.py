"""Results directories as the rollout roles write them (roles/rollout_step/tasks/step.yml,
roles/rollout/tasks/rollback.yml), built from the gate's own code: thresholds from ``resolve_thresholds``,
measurements from ``assess`` and ``Measurement.to_dict``. Shared by the report's unit tests."""

from __future__ import annotations

import datetime
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import assess, pool_requests
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import resolve_thresholds

from tests.unit.plugins.module_utils.guard_samples import REASON as GUARD_REASON
from tests.unit.plugins.module_utils.guard_samples import guard

VERSION = "2.0.0"
START = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.timezone.utc)  # noqa: UP017 - as the gate writes it
INTERVAL = 10.0
ROLLBACK_REASON = (
    "Failed: failed (1) > failure_limit (0); measurement 2/2: p95 latency 83.1 ms > threshold 48 ms"
)


def iso_z(moment: datetime.datetime) -> str:
    """As the roles stamp a report: ``now(utc=true).isoformat() ~ 'Z'``."""
    return moment.replace(tzinfo=None).isoformat() + "Z"


def legacy_requests(requests: float, weight: int, shadow_percent: int) -> float | None:
    """What legacy served beside the new pool's ``requests`` at that split (shadow: the new pool's are the
    mirrored copies of ``shadow_percent`` of legacy's); None when the split says nothing (no mirror)."""
    if weight:
        return requests * (100 - weight) / weight
    return requests * 100 / shadow_percent if shadow_percent else None


def measurements(
    phase: str,
    start: datetime.datetime,
    figures: list[tuple[float, float, float, float]],
    split: tuple[int, int] | None = None,
) -> list:
    """``figures`` is (requests, p95 ms, success %, memory MB) per measurement, one interval apart; with
    ``split`` (weight, shadow percent) each also records what legacy served, as the gate does with the judge
    on."""
    thresholds = resolve_thresholds(phase)
    taken = []
    for index, (requests, p95, success, memory) in enumerate(figures):
        m = assess(
            thresholds, requests=requests, p95_ms=p95, success_rate=success, memory_mb=memory, breaker_open=0
        )
        if split is not None:
            m.pool_requests = pool_requests(requests, legacy_requests(requests, *split))
        m.started_at = (start + datetime.timedelta(seconds=index * INTERVAL)).timestamp()
        m.finished_at = m.started_at + INTERVAL
        taken.append(m.to_dict())
    return taken


def step_report(
    phase: str, weight: int, start: datetime.datetime, figures: list, shadow_percent: int = 0
) -> dict[str, Any]:
    taken = measurements(phase, start, figures, (weight, shadow_percent))
    return {
        "phase": phase,
        "weight": weight,
        "shadow_percent": shadow_percent,
        "version": VERSION,
        "verdict": "Successful",
        "message": f"Successful: {len(taken)} measurements, 0 failed, 0 inconclusive, 0 errors",
        "thresholds": resolve_thresholds(phase).to_dict(),
        "measurements": taken,
        "judge": {},
        "time": iso_z(start + datetime.timedelta(seconds=len(figures) * INTERVAL + 1)),
    }


GOOD = [(800.0, 31.4, 99.9, 61.2), (820.0, 35.0, 99.8, 62.0), (790.0, 33.1, 99.95, 62.4)]


def promoted_run() -> dict[str, Any]:
    """The rehearsal: shadow, partial 25/50/75 and full, every gate Successful (file name -> JSON)."""
    steps = [("shadow", 0, 10), ("partial", 25, 0), ("partial", 50, 0), ("partial", 75, 0), ("full", 100, 0)]
    files = {}
    for index, (phase, weight, shadow) in enumerate(steps):
        start = START + datetime.timedelta(minutes=2 * index)
        files[f"performance_report_{phase}_{weight}.json"] = step_report(phase, weight, start, GOOD, shadow)
    return files


def rolled_back_run() -> dict[str, Any]:
    """Partial 25 passes; the 50 % gate measures a p95 of 83.1 ms against 48 and the step is rolled back."""
    files = {
        "performance_report_shadow_0.json": step_report("shadow", 0, START, GOOD, 10),
        "performance_report_partial_25.json": step_report(
            "partial", 25, START + datetime.timedelta(minutes=2), GOOD
        ),
    }
    start = START + datetime.timedelta(minutes=4)
    failed = measurements("partial", start, [(800.0, 40.2, 99.9, 70.5), (810.0, 83.1, 99.7, 71.0)], (50, 0))
    files["rollback_decision.json"] = {
        "decision": "rollback",
        "phase": "partial",
        "weight": 50,
        "shadow_percent": 0,
        "version": VERSION,
        "reverted_to": "legacy",
        "reason": ROLLBACK_REASON,
        "verdict": "Failed",
        "thresholds": resolve_thresholds("partial").to_dict(),
        "measurements": failed,
        "judge": {},
        "failed_task": "Decide the gate partial 50%",
        "time": iso_z(start + datetime.timedelta(seconds=2 * INTERVAL + 1)),
    }
    return files


def guard_rollback(time: datetime.datetime) -> dict[str, Any]:
    """The rollback_decision.json a step writes when the lb's guard rolled partial 75 % back, with the guard's
    standing record."""
    return {
        "decision": "rollback",
        "phase": "partial",
        "weight": 75,
        "version": VERSION,
        "reverted_to": "legacy",
        "reason": GUARD_REASON,
        "verdict": "Guard",
        "guard": [guard(weights_before={"new_weight": 75, "shadow_percent": 0})],
        "time": iso_z(time),
    }


def guard_rolled_back_run(time: datetime.datetime) -> dict[str, Any]:
    """Shadow and partial 25/50/75 passed; the guard rolled partial 75 back at ``time``."""
    files = promoted_run()
    del files["performance_report_full_100.json"]
    files["rollback_decision.json"] = guard_rollback(time)
    return files
