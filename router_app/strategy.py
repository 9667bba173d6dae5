"""Destination choice: least-loaded with a predictive load factor, or plain round-robin.

A destination's load is what it has outstanding (deliveries in flight plus messages already assigned to it
but still queued). The predictive score multiplies that by the destination's EWMA delivery latency, i.e. it
estimates how long a new message would wait there::

    score = latency_weight * ewma_latency_ms * (outstanding + 1) + load_weight * outstanding

With the ``predictive_load`` flag off the score is just ``outstanding``. Ties rotate, so equally loaded
destinations (e.g. decide-only mode, where nothing is ever outstanding) share traffic round-robin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Before the first delivery a destination is assumed to answer in 1 ms: neutral, and never zero (a zero
# latency would make every destination score 0 and hide the outstanding count).
INITIAL_LATENCY_MS = 1.0


@dataclass(slots=True)
class DestinationLoad:
    name: str
    ewma_ms: float = INITIAL_LATENCY_MS
    in_flight: int = 0
    pending: int = 0
    deliveries: int = 0

    @property
    def outstanding(self) -> int:
        return self.in_flight + self.pending


def score(load: DestinationLoad, latency_weight: float, load_weight: float, predictive: bool) -> float:
    """Lower is better; see the module docstring for the formula."""
    outstanding = load.outstanding
    if not predictive:
        return float(outstanding)
    return latency_weight * load.ewma_ms * (outstanding + 1) + load_weight * outstanding


def ewma(previous: float, sample: float, alpha: float) -> float:
    return alpha * sample + (1.0 - alpha) * previous


class RoutingStrategy:
    """Keeps per-destination load and picks destinations; single event loop, no locking."""

    def __init__(
        self,
        destinations: Sequence[str],
        alpha: float = 0.2,
        latency_weight: float = 1.0,
        load_weight: float = 1.0,
    ) -> None:
        self.loads = {name: DestinationLoad(name) for name in destinations}
        self.names = tuple(destinations)
        self.alpha = alpha
        self.latency_weight = latency_weight
        self.load_weight = load_weight
        self._rr = 0
        self._tie = 0

    def round_robin(self, candidates: Sequence[str]) -> str:
        choice = candidates[self._rr % len(candidates)]
        self._rr += 1
        return choice

    def least_loaded(self, candidates: Sequence[str], predictive: bool = True) -> str:
        """Lowest score; among equal scores the starting point rotates on every call."""
        count = len(candidates)
        start = self._tie % count
        self._tie += 1
        best = candidates[start]
        best_score = score(self.loads[best], self.latency_weight, self.load_weight, predictive)
        for step in range(1, count):
            name = candidates[(start + step) % count]
            value = score(self.loads[name], self.latency_weight, self.load_weight, predictive)
            if value < best_score:
                best, best_score = name, value
        return best

    def assign(self, name: str) -> None:
        """A queued message now counts against ``name``: the next choice already sees it."""
        self.loads[name].pending += 1

    def unassign(self, name: str) -> None:
        self.loads[name].pending -= 1

    def start(self, name: str) -> None:
        self.loads[name].in_flight += 1

    def cancel(self, name: str) -> None:
        """A started delivery that sent nothing: no latency sample."""
        self.loads[name].in_flight -= 1

    def finish(self, name: str, latency_ms: float) -> None:
        """A delivery ended; its latency (a failure's penalty latency) feeds the prediction."""
        load = self.loads[name]
        load.in_flight -= 1
        load.deliveries += 1
        load.ewma_ms = ewma(load.ewma_ms, max(latency_ms, 0.001), self.alpha)

    def describe(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "ewma_latency_ms": round(load.ewma_ms, 3),
                "in_flight": load.in_flight,
                "pending": load.pending,
                "score": round(score(load, self.latency_weight, self.load_weight, True), 3),
            }
            for name, load in self.loads.items()
        }
