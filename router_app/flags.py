"""Percent-based feature flags: turn a new behaviour on for a share of messages, stably.

A message is in a flag's share when a hash of (flag, message id) falls under the percentage, so the same
message always gets the same answer (a retry behaves like the original) and raising the percentage only adds
messages to the share, never swaps them. Different flags use independent shares.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

KNOWN_FLAGS = {
    "least_loaded": "choose destinations least-loaded (off: round-robin)",
    "predictive_load": "weight the load by EWMA delivery latency (off: outstanding count only)",
}
SCALE = 10_000  # hundredths of a percent


def bucket(flag: str, key: str) -> int:
    """Stable position of ``key`` in ``0..SCALE-1`` for ``flag``."""
    return zlib.crc32(f"{flag}:{key}".encode()) % SCALE


class FeatureFlags:
    def __init__(self, percents: Mapping[str, float]) -> None:
        unknown = sorted(set(percents) - set(KNOWN_FLAGS))
        if unknown:
            raise ValueError(f"unknown feature flag(s) {', '.join(unknown)}; known: {', '.join(KNOWN_FLAGS)}")
        self.percents = {name: float(percents.get(name, 100.0)) for name in KNOWN_FLAGS}
        self._thresholds = {name: round(p * SCALE / 100) for name, p in self.percents.items()}

    def enabled(self, flag: str, key: str) -> bool:
        threshold = self._thresholds[flag]
        if threshold >= SCALE:
            return True
        if threshold <= 0:
            return False
        return bucket(flag, key) < threshold
