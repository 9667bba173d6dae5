"""Fault injection for rehearsing rollbacks: added latency (fixed or per message class), a share of 503
answers (overall or per message class), and memory growth.

Off by default. It is switched on only at deploy time (``ROUTER_FAULT_INJECTION=on``) or at run time through
the admin endpoint, which exists only when ``ROUTER_ADMIN_TOKEN`` is set and requires that token. While off,
the hot path pays one attribute check.

The error pattern is counter-based rather than random so a gate test sees exactly the share it configured
(after ``n`` requests, exactly ``floor(n * rate)`` have failed) and test runs are repeatable.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from router_app.config import Settings


def should_fail(n: int, rate: float) -> bool:
    """Whether the ``n``-th request (1-based) fails, spreading failures evenly at ``rate``."""
    return math.floor(n * rate) > math.floor((n - 1) * rate)


class FaultInjector:
    """Applies the configured faults to each route request, in arrival order."""

    def __init__(
        self,
        enabled: bool = False,
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        latency_ms_by_class: Mapping[str, float] | None = None,
        error_rate_by_class: Mapping[str, float] | None = None,
        memory_growth_kb: float = 0.0,
        memory_max_mb: float = 64.0,
    ) -> None:
        self.enabled = False
        self.latency_ms = 0.0
        self.error_rate = 0.0
        self.latency_ms_by_class: dict[str, float] = {}
        self.error_rate_by_class: dict[str, float] = {}
        self._count_by_class: dict[str, int] = {}
        self.memory_growth_kb = 0.0
        self.memory_max_mb = memory_max_mb
        self._ballast: list[bytes] = []
        self._ballast_bytes = 0
        self._count = 0
        self.active = False
        self.configure(
            enabled=enabled,
            latency_ms=latency_ms,
            error_rate=error_rate,
            latency_ms_by_class=dict(latency_ms_by_class or {}),
            error_rate_by_class=dict(error_rate_by_class or {}),
            memory_growth_kb=memory_growth_kb,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> FaultInjector:
        return cls(
            enabled=settings.fault_injection,
            latency_ms=settings.fault_latency_ms,
            error_rate=settings.fault_error_rate,
            latency_ms_by_class=settings.fault_latency_ms_by_class,
            error_rate_by_class=settings.fault_error_rate_by_class,
            memory_growth_kb=settings.fault_memory_growth_kb,
            memory_max_mb=settings.fault_memory_max_mb,
        )

    def configure(self, **changes: Any) -> None:
        """Change some settings (admin endpoint); turning faults off also frees the grown memory."""
        for name, value in changes.items():
            if value is not None:
                setattr(self, name, value)
        does_something = (
            self.latency_ms > 0
            or self.error_rate > 0
            or self.memory_growth_kb > 0
            or any(self.latency_ms_by_class.values())
            or any(self.error_rate_by_class.values())
        )
        self.active = self.enabled and does_something
        if not self.enabled:
            self._ballast.clear()
            self._ballast_bytes = 0
            self._count = 0
            self._count_by_class = {}

    def reset(self) -> None:
        """Off, and every setting back to nothing: turning it on again later starts from a clean slate."""
        self.configure(
            enabled=False,
            latency_ms=0.0,
            error_rate=0.0,
            latency_ms_by_class={},
            error_rate_by_class={},
            memory_growth_kb=0.0,
        )

    def latency_s(self, message_class: str) -> float:
        """A class's own latency replaces the fixed one for that class."""
        return self.latency_ms_by_class.get(message_class, self.latency_ms) / 1000.0

    def _grow(self) -> None:
        size = int(self.memory_growth_kb * 1024)
        if size and self._ballast_bytes + size <= self.memory_max_mb * 1024 * 1024:
            self._ballast.append(b"\x01" * size)  # written, so it is resident, not just reserved
            self._ballast_bytes += size

    async def apply(self, message_class: str) -> bool:
        """Grow, sleep the injected latency, then say whether this request must be answered with 503."""
        self._count += 1
        n = self._count
        if self.memory_growth_kb:
            self._grow()
        delay = self.latency_s(message_class)
        if delay > 0:
            await asyncio.sleep(delay)
        if message_class in self.error_rate_by_class:
            # A class's own rate replaces the overall one, counted over that class's requests only, so
            # "every strategic message fails" is exact whatever the mix.
            k = self._count_by_class[message_class] = self._count_by_class.get(message_class, 0) + 1
            return should_fail(k, self.error_rate_by_class[message_class])
        return should_fail(n, self.error_rate)

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "active": self.active,
            "latency_ms": self.latency_ms,
            "latency_ms_by_class": self.latency_ms_by_class,
            "error_rate_by_class": self.error_rate_by_class,
            "error_rate": self.error_rate,
            "memory_growth_kb": self.memory_growth_kb,
            "memory_max_mb": self.memory_max_mb,
            "memory_grown_bytes": self._ballast_bytes,
        }
