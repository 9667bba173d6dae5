"""Fault injection for rehearsing rollbacks: added latency and a share of 503 answers.

The error pattern is counter-based rather than random so a gate test sees exactly the share it configured
(after ``n`` requests, exactly ``floor(n * rate)`` have failed) and test runs are repeatable.
"""

from __future__ import annotations

import asyncio
import math

from router_app.config import Settings


def should_fail(n: int, rate: float) -> bool:
    """Whether the ``n``-th request (1-based) fails, spreading failures evenly at ``rate``."""
    return math.floor(n * rate) > math.floor((n - 1) * rate)


class FaultInjector:
    """Applies the configured faults to each route request, in arrival order."""

    def __init__(self, latency_ms: float, error_rate: float) -> None:
        self.latency_s = latency_ms / 1000.0
        self.error_rate = error_rate
        self._count = 0

    async def apply(self) -> bool:
        """Sleep the injected latency, then say whether this request must be answered with 503."""
        self._count += 1
        n = self._count
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        return should_fail(n, self.error_rate)


def build_injector(settings: Settings) -> FaultInjector | None:
    """``None`` unless fault injection is on and does something, so the default path pays nothing."""
    if not settings.fault_injection or (settings.fault_latency_ms == 0 and settings.fault_error_rate == 0):
        return None
    return FaultInjector(settings.fault_latency_ms, settings.fault_error_rate)
