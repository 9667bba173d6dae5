"""Circuit breaker per destination: closed -> open -> half-open -> closed.

``failure_threshold`` consecutive failures open it; after ``recovery_s`` it lets ``half_open_probes`` trial
deliveries through; one success closes it, one failure opens it again for another ``recovery_s``. The clock is
injected, so the state machine is tested without sleeping. State values match the metric
``msgroute_breaker_state``: 0 closed, 1 half-open, 2 open.
"""

from __future__ import annotations

from collections.abc import Callable

CLOSED, HALF_OPEN, OPEN = 0, 1, 2
STATE_NAMES = {CLOSED: "closed", HALF_OPEN: "half-open", OPEN: "open"}


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_threshold: int,
        recovery_s: float,
        clock: Callable[[], float],
        on_change: Callable[[str, int, int], None] | None = None,
        half_open_probes: int = 1,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_s = recovery_s
        self.half_open_probes = half_open_probes
        self._clock = clock
        self._on_change = on_change
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probes = 0

    def _move(self, state: int) -> None:
        old, self.state = self.state, state
        if state == OPEN:
            self.opened_at = self._clock()
        self._probes = 0
        if old != state and self._on_change is not None:
            self._on_change(self.name, old, state)

    def _recovered(self) -> bool:
        return self.state == OPEN and self._clock() - self.opened_at >= self.recovery_s

    def available(self) -> bool:
        """Could a delivery go through now? No state change: routing decisions ask this."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return self._recovered()
        return self._probes < self.half_open_probes

    def allow(self) -> bool:
        """Take permission for one delivery (a half-open breaker hands out its probe slots)."""
        if self.state == CLOSED:
            return True
        if self._recovered():
            self._move(HALF_OPEN)
        if self.state == HALF_OPEN and self._probes < self.half_open_probes:
            self._probes += 1
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        if self.state != CLOSED:
            self._move(CLOSED)

    def record_failure(self) -> None:
        self.failures += 1
        if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.failure_threshold):
            self._move(OPEN)

    def abandon(self) -> None:
        """A permitted delivery never happened (cancelled): give its probe slot back."""
        if self.state == HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def seconds_until_retry(self) -> float:
        """How long until a delivery may be tried again (0 when it may now)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.recovery_s - (self._clock() - self.opened_at))

    def describe(self) -> dict[str, object]:
        return {
            "state": STATE_NAMES[self.state],
            "consecutive_failures": self.failures,
            "retry_in_s": round(self.seconds_until_retry(), 3),
            "failure_threshold": self.failure_threshold,
            "recovery_timeout_s": self.recovery_s,
        }
