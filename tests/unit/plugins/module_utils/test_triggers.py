"""The rollback level per phase and the alert timing: defaults from the seed, refusals naming the field."""

from __future__ import annotations

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import (
    PHASE_DEFAULTS,
    resolve_thresholds,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.triggers import (
    DEFAULT_FOR,
    duration_seconds,
    resolve_alerting,
    resolve_triggers,
    stricter_than_sla,
)


def test_the_seed_s_triggers_are_every_phase_s_default_and_looser_than_its_sla():
    for phase, sla in PHASE_DEFAULTS.items():
        trig = resolve_triggers(phase)
        assert (trig.max_p95_ms, trig.min_success_rate, trig.max_open_breakers) == (65, 98, 0)
        assert trig.max_p95_ms > sla.max_p95_ms
        assert trig.min_success_rate < sla.min_success_rate
        assert stricter_than_sla(phase, sla, trig) == []


def test_overrides_coerce_and_null_switches_off():
    trig = resolve_triggers("partial", {"max_p95_ms": "70", "max_memory_mb": None, "min_requests": 5.0})
    assert trig.max_p95_ms == 70.0
    assert trig.max_memory_mb is None
    assert trig.min_requests == 5


def test_every_stricter_field_is_listed():
    sla = resolve_thresholds("full", {"max_open_breakers": 3})
    trig = resolve_triggers(
        "full", {"max_p95_ms": 49, "min_success_rate": 99.5, "max_memory_mb": 64, "max_open_breakers": 2}
    )
    problems = stricter_than_sla("full", sla, trig)
    assert [p.split(":")[0] for p in problems] == [
        "rollout_triggers.full.max_p95_ms",
        "rollout_triggers.full.min_success_rate",
        "rollout_triggers.full.max_memory_mb",
        "rollout_triggers.full.max_open_breakers",
    ]
    assert "rollout_thresholds.full.max_p95_ms 50 ms" in problems[0]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"max_p95_ms": -1}, "max_p95_ms: must be >= 0"),
        ({"max_p95_ms": True}, "max_p95_ms: expected a number"),
        ({"min_success_rate": 100.5}, "min_success_rate: must be from 0 to 100"),
        ({"max_open_breakers": -1}, "max_open_breakers"),
        ({"min_requests": 2.5}, "min_requests: must be a whole number"),
        ({"max_shadow_failure_percent": "inf"}, "max_shadow_failure_percent"),
        ({"latency": 5}, "latency: unknown field"),
    ],
)
def test_bad_triggers_are_refused(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        resolve_triggers("shadow", overrides)


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("0s", 0), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5)]
)
def test_durations(text, seconds):
    assert duration_seconds("x", text) == seconds


def test_alert_timing_defaults_are_the_seed_s_and_overrides_merge():
    timing = resolve_alerting({"for": {"latency": "5s"}, "rate_window": "5s"})
    assert timing.for_ == {**DEFAULT_FOR, "latency": "5s"}
    assert (
        DEFAULT_FOR["latency"] == "5m" and DEFAULT_FOR["success"] == "3m" and DEFAULT_FOR["breakers"] == "0s"
    )
    assert timing.seconds("rate_window") == 5
    assert timing.seconds("latency") == 5
    assert resolve_alerting(None).to_dict()["for"] == DEFAULT_FOR
