"""The rollback level beside the promotion SLA: per phase, the values at which a release is reverted.

Two levels per phase come from the one settings source (role ``rollout``). The gate's SLA
(``rollout_thresholds``, see ``analysis.Thresholds``) says what a release needs to be *promoted*; a release
that misses it is held. The trigger (``rollout_triggers``, here) says what is bad enough to *roll back*. The
seed gives the partial phase's triggers - success < 98 %, p95 > 65 ms - and calls an open circuit breaker an
immediate trigger; every phase's SLA is stricter than those, so the same values are every phase's default.

A trigger may never be stricter than the SLA: a release the gate would promote must not be reverted by the
guard (``stricter_than_sla``, refused in pre-flight). A field set to None is not triggered at all; an SLA
field that is None (memory or breakers not gated) sets no bound for the trigger, because "the gate does not
look" is not "anything goes".

How long a breach must last before an alert fires (``for``), and over which window rates are taken, are per
inventory (``rollout_alerting``, ``AlertTiming``): the seed's minutes in production, seconds in a rehearsal.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import (
    DEFAULT_MIN_REQUESTS,
    PHASES,
    Thresholds,
)

_DURATION = re.compile(r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _optional_number(name: str, value: Any, minimum: float, maximum: float = math.inf) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number or null, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number or null, got {value!r}") from None
    if not math.isfinite(number) or not minimum <= number <= maximum:
        bounds = f">= {minimum:g}" if maximum == math.inf else f"from {minimum:g} to {maximum:g}"
        raise ValueError(f"{name}: must be {bounds}, got {value!r}")
    return number


def _whole(name: str, value: Any, *, optional: bool) -> int | None:
    number = _optional_number(name, value, 0)
    if number is None:
        if optional:
            return None
        raise ValueError(f"{name}: may not be null")
    if not number.is_integer():
        raise ValueError(f"{name}: must be a whole number, got {value!r}")
    return int(number)


@dataclass(frozen=True)
class Triggers:
    """One phase's rollback level; None switches that trigger off. Checked and coerced on construction."""

    max_p95_ms: float | None = 65.0
    min_success_rate: float | None = 98.0
    max_memory_mb: float | None = 128.0
    max_open_breakers: int | None = 0
    max_failover_percent: float | None = 2.0
    max_shadow_failure_percent: float | None = 2.0
    min_requests: int = DEFAULT_MIN_REQUESTS

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_p95_ms", _optional_number("max_p95_ms", self.max_p95_ms, 0))
        if self.max_p95_ms == 0:
            raise ValueError("max_p95_ms: must be > 0, got 0")
        set_(self, "min_success_rate", _optional_number("min_success_rate", self.min_success_rate, 0, 100))
        set_(self, "max_memory_mb", _optional_number("max_memory_mb", self.max_memory_mb, 0))
        if self.max_memory_mb == 0:
            raise ValueError("max_memory_mb: must be > 0, got 0")
        set_(self, "max_open_breakers", _whole("max_open_breakers", self.max_open_breakers, optional=True))
        for name in ("max_failover_percent", "max_shadow_failure_percent"):
            set_(self, name, _optional_number(name, getattr(self, name), 0, 100))
        set_(self, "min_requests", _whole("min_requests", self.min_requests, optional=False))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TRIGGER_DEFAULTS: dict[str, Triggers] = {phase: Triggers() for phase in PHASES}
TRIGGER_FIELDS = tuple(f.name for f in dataclasses.fields(Triggers))


def resolve_triggers(phase: str, overrides: Mapping[str, Any] | None = None) -> Triggers:
    """The phase's default triggers with the user's overrides applied; ValueError names the field."""
    if phase not in TRIGGER_DEFAULTS:
        raise ValueError(f"phase: unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(TRIGGER_FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field; expected some of {', '.join(TRIGGER_FIELDS)}")
    return dataclasses.replace(TRIGGER_DEFAULTS[phase], **overrides)


def stricter_than_sla(phase: str, sla: Thresholds, triggers: Triggers) -> list[str]:
    """Every trigger that would revert a release the gate promotes, one line each."""
    problems = []

    def refuse(name: str, trigger: float, sla_value: float, unit: str, side: str) -> None:
        problems.append(
            f"rollout_triggers.{phase}.{name}: {trigger:g}{unit} is stricter than the promotion SLA "
            f"rollout_thresholds.{phase}.{name} {sla_value:g}{unit} (a trigger must be {side} it): "
            "a release the gate promotes would be rolled back"
        )

    if triggers.max_p95_ms is not None and triggers.max_p95_ms < sla.max_p95_ms:
        refuse("max_p95_ms", triggers.max_p95_ms, sla.max_p95_ms, " ms", "at or above")
    if triggers.min_success_rate is not None and triggers.min_success_rate > sla.min_success_rate:
        refuse("min_success_rate", triggers.min_success_rate, sla.min_success_rate, " %", "at or below")
    if None not in (triggers.max_memory_mb, sla.max_memory_mb) and triggers.max_memory_mb < sla.max_memory_mb:
        refuse("max_memory_mb", triggers.max_memory_mb, sla.max_memory_mb, " MB", "at or above")
    if (
        None not in (triggers.max_open_breakers, sla.max_open_breakers)
        and triggers.max_open_breakers < sla.max_open_breakers
    ):
        refuse("max_open_breakers", triggers.max_open_breakers, sla.max_open_breakers, "", "at or above")
    return problems


# --------------------------------------------------------------------------------------------- timing

# Which alerts each `for` applies to. The seed: latency over threshold for 5+ minutes, success under SLA for
# 3+ minutes, an open breaker is an immediate trigger.
DEFAULT_FOR: dict[str, str] = {
    "latency": "5m",
    "success": "3m",
    "breakers": "0s",
    "memory": "5m",
    "leak": "10m",
    "absent": "1m",
    "starved": "5m",
    "failovers": "3m",
    "shadow_failures": "3m",
    "lb_metrics": "2m",
}


def duration_seconds(name: str, value: Any) -> float:
    """Seconds of a Prometheus duration (``90s``, ``5m``, ``1h30m``); ValueError names the setting."""
    text = str(value).strip() if value is not None else ""
    if not _DURATION.match(text):
        raise ValueError(f"{name}: expected a Prometheus duration such as 30s or 5m, got {value!r}")
    return sum(float(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", text))


@dataclass(frozen=True)
class AlertTiming:
    """How long each breach must last (``for_``), the rate window of the recording rules, and the
    ``predict_linear`` lookback and horizon of the leak alert. Durations are Prometheus strings."""

    rate_window: str = "1m"
    for_: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FOR))
    leak_lookback: str = "30m"
    leak_horizon: str = "1h"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.for_) - set(DEFAULT_FOR))
        if unknown:
            raise ValueError(f"for.{unknown[0]}: unknown alert; expected some of {', '.join(DEFAULT_FOR)}")
        merged = {**DEFAULT_FOR, **{k: str(v).strip() for k, v in self.for_.items()}}
        for name, value in merged.items():
            duration_seconds(f"for.{name}", value)
        object.__setattr__(self, "for_", merged)
        for name in ("rate_window", "leak_lookback", "leak_horizon"):
            value = str(getattr(self, name)).strip()
            if duration_seconds(name, value) <= 0:
                raise ValueError(f"{name}: must be longer than 0, got {value!r}")
            object.__setattr__(self, name, value)

    def seconds(self, name: str) -> float:
        return duration_seconds(name, self.for_[name] if name in self.for_ else getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate_window": self.rate_window,
            "for": dict(self.for_),
            "leak_lookback": self.leak_lookback,
            "leak_horizon": self.leak_horizon,
        }


ALERTING_FIELDS = ("rate_window", "for", "leak_lookback", "leak_horizon")


def resolve_alerting(settings: Mapping[str, Any] | None = None) -> AlertTiming:
    """``rollout_alerting`` with the defaults applied; ValueError names the setting."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(ALERTING_FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown setting; expected some of {', '.join(ALERTING_FIELDS)}")
    for_ = settings.pop("for", None) or {}
    if not isinstance(for_, Mapping):
        raise ValueError(f"for: expected a mapping of alert to duration, got {for_!r}")
    return AlertTiming(for_=dict(for_), **{k: v for k, v in settings.items() if v is not None})
