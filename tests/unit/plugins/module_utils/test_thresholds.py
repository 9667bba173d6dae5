"""Phase thresholds: defaults written once, overrides checked and merged."""

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
