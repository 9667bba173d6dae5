"""Phase thresholds: defaults written once, overrides checked and merged."""

import math

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import (
    PHASE_DEFAULTS,
    resolve_thresholds,
)


def test_phase_defaults_are_the_design_figures() -> None:
    figures = {
        phase: (t.max_p95_ms, t.min_success_rate, t.max_memory_mb) for phase, t in PHASE_DEFAULTS.items()
    }
    assert figures == {"shadow": (45, 98.5, 128), "partial": (48, 99.0, 128), "full": (50, 99.13, 128)}


def test_overrides_merge_over_phase_defaults() -> None:
    merged = resolve_thresholds("full", {"max_p95_ms": "40", "min_requests": 5, "no_data": "fail"})
    assert (merged.max_p95_ms, merged.min_success_rate, merged.min_requests, merged.no_data) == (
        40.0,
        99.13,
        5,
        "fail",
    )


def test_explicit_null_switches_memory_check_off() -> None:
    assert resolve_thresholds("shadow", {"max_memory_mb": None}).max_memory_mb is None


@pytest.mark.parametrize(
    ("phase", "overrides", "field"),
    [
        ("canary", {}, "phase"),
        ("partial", {"max_p95": 10}, "thresholds.max_p95"),
        ("partial", {"max_p95_ms": "fast"}, "thresholds.max_p95_ms"),
        ("partial", {"max_p95_ms": 0}, "thresholds.max_p95_ms"),
        ("partial", {"max_p95_ms": True}, "thresholds.max_p95_ms"),
        ("partial", {"min_success_rate": 101}, "thresholds.min_success_rate"),
        ("partial", {"min_success_rate": None}, "thresholds.min_success_rate"),
        ("partial", {"max_memory_mb": -1}, "thresholds.max_memory_mb"),
        ("partial", {"min_requests": 2.5}, "thresholds.min_requests"),
        ("partial", {"no_data": "ignore"}, "thresholds.no_data"),
        ("partial", {"max_open_breakers": -1}, "thresholds.max_open_breakers"),
    ],
)
def test_bad_phase_or_threshold_names_the_field(phase: str, overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        resolve_thresholds(phase, overrides)


@pytest.mark.parametrize(
    ("field", "accepted", "refused"),
    [
        # Each bound at its edge and just past it; NaN, the infinities and booleans are never numbers here.
        ("max_p95_ms", [1e-9, "0.001", 10_000], [0, -1e-9, "nan", math.inf, -math.inf, True, "fast", [48]]),
        ("min_success_rate", [0, 100, "99.9"], [-1e-9, 100.000001, math.nan, math.inf, False]),
        ("max_memory_mb", [1e-9, 4096], [0, -1, math.nan, math.inf]),
        ("min_requests", [0, 1, "40", 40.0], [-1, 2.5, math.nan, math.inf, True]),
        ("max_open_breakers", [0, 3, "2"], [-1, 0.5, math.nan, -math.inf]),
    ],
)
def test_threshold_bounds_at_and_past_each_edge(field: str, accepted: list, refused: list) -> None:
    for value in accepted:
        assert getattr(resolve_thresholds("partial", {field: value}), field) == float(value)
    for value in refused:
        with pytest.raises(ValueError, match=rf"^thresholds\.{field}:"):
            resolve_thresholds("partial", {field: value})
