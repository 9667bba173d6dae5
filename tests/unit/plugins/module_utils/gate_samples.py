"""Measurements and router-shaped /metrics text shared by the gate's unit tests."""

from __future__ import annotations

import math

from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    MIB,
    Measurement,
    assess,
    error_measurement,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import PHASE_DEFAULTS

INF = math.inf
PARTIAL = PHASE_DEFAULTS["partial"]


def exposition(
    buckets: dict[float, float],
    live: dict[str, float],
    mirrored: dict[str, float] | None = None,
    memory_bytes: float | None = 50 * MIB,
    breakers: dict[str, float] | None = None,
    histogram: str = "msgroute_request_duration_seconds",
    counter: str = "msgroute_requests_total",
) -> str:
    """Router-shaped /metrics text from cumulative buckets and per-status request counts."""
    lines = [f"# TYPE {histogram} histogram"]
    for bound, count in buckets.items():
        le = "+Inf" if bound == INF else repr(bound)
        lines.append(f'{histogram}_bucket{{le="{le}"}} {count}')
    lines.append(f"# TYPE {counter} counter")
    for flag, counts in (("false", live), ("true", mirrored or {})):
        for status, count in counts.items():
            lines.append(f'{counter}{{mirrored="{flag}",status_class="{status}"}} {count}')
    if memory_bytes is not None:
        lines.append(f"process_resident_memory_bytes {memory_bytes}")
    for destination, state in (breakers or {}).items():
        lines.append(f'msgroute_breaker_state{{destination="{destination}"}} {state}')
    return "\n".join(lines) + "\n"


def prometheus_answer(value: str | None) -> dict:
    """Prometheus' answer to an instant query: one sample of ``value``, or no series at all (None)."""
    result = [] if value is None else [{"metric": {}, "value": [1700000000.0, value]}]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def ok(**overrides: object) -> Measurement:
    values = {"requests": 500.0, "p95_ms": 30.0, "success_rate": 99.9, "memory_mb": 60.0}
    values.update(overrides)
    return assess(PARTIAL, **values)


def failed_p95() -> Measurement:
    return ok(p95_ms=83.1)


def inconclusive() -> Measurement:
    return ok(requests=3)


def errored() -> Measurement:
    return error_measurement(["target http://r1:8080/metrics unreachable: connection refused"])
