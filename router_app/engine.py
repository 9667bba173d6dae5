"""The routing engine: classification plus destination choice, independent of HTTP.

Kept apart from the web layer so later stages (priority queues, circuit breakers, idempotency) extend one
object that is testable without a server.
"""

from __future__ import annotations

import itertools

from router_app.classifier import classify
from router_app.config import Settings
from router_app.models import RouteDecision, RouteRequest


class RoutingEngine:
    """Routes messages; destinations are chosen round-robin so load spreads evenly and predictably.

    Not thread-safe by design: it runs on the single event loop of one uvicorn worker.
    """

    def __init__(self, settings: Settings) -> None:
        self._destinations = itertools.cycle(settings.destinations)
        self._version = settings.version
        self._mode = settings.mode

    def route(self, message: RouteRequest) -> RouteDecision:
        """Decide where ``message`` goes; deterministic for a given request order."""
        decided = classify(message.type, message.priority)
        return RouteDecision(
            message_id=message.id,
            classification=decided.classification,
            priority=decided.priority,
            queue=decided.queue,
            destination=next(self._destinations),
            engine_version=self._version,
            mode=self._mode,
            rule=decided.rule,
        )
