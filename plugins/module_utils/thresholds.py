"""The phase thresholds: what one gate measurement must satisfy, written once, with their defaults.

Inventory ``rollout_thresholds`` -> ``resolve_thresholds`` -> ``Thresholds`` -> ``measurement.assess``:
the values flow one way, and this module is the one place that knows the phase defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils._numbers import number, whole_number

NO_DATA_POLICIES = ("inconclusive", "fail", "pass")
# Below this many requests a p95 is the maximum of a handful of samples: not evidence either way.
DEFAULT_MIN_REQUESTS = 20


@dataclass(frozen=True)
class Thresholds:
    """What one measurement must satisfy. Values are coerced and checked on construction.

    ``max_memory_mb`` and ``max_open_breakers`` are not gated when None. ``no_data`` says what a
    missing value (metric not exposed, no observations) means: it is never silently a pass. NaN,
    infinities, booleans and negative values are refused for every field.
    """

    max_p95_ms: float
    min_success_rate: float
    max_memory_mb: float | None = None
    min_requests: int = DEFAULT_MIN_REQUESTS
    no_data: str = "inconclusive"
    max_open_breakers: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_p95_ms", number("thresholds.max_p95_ms", self.max_p95_ms, minimum=0, open_low=True))
        set_(
            self,
            "min_success_rate",
            number("thresholds.min_success_rate", self.min_success_rate, minimum=0, maximum=100),
        )
        if self.max_memory_mb is not None:
            set_(
                self,
                "max_memory_mb",
                number("thresholds.max_memory_mb", self.max_memory_mb, minimum=0, open_low=True),
            )
        set_(self, "min_requests", whole_number("thresholds.min_requests", self.min_requests, minimum=0))
        if self.no_data not in NO_DATA_POLICIES:
            raise ValueError(
                f"thresholds.no_data: must be one of {', '.join(NO_DATA_POLICIES)}, got {self.no_data!r}"
            )
        if self.max_open_breakers is not None:
            breakers = whole_number("thresholds.max_open_breakers", self.max_open_breakers, minimum=0)
            set_(self, "max_open_breakers", breakers)

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
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(f"thresholds: expected a mapping of field to value, got {overrides!r}")
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
