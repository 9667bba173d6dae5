"""Readiness state: starting -> ready -> draining.

``/ready`` answers 503 outside ``ready`` so a balancer or orchestrator stops sending new work while the
process starts, and as soon as SIGTERM arrives, before uvicorn finishes the requests in flight.
"""

from __future__ import annotations

STARTING = "starting"
READY = "ready"
DRAINING = "draining"


class Lifecycle:
    """One per app; flipped by the lifespan hooks and the server's signal handler."""

    def __init__(self) -> None:
        self.state = STARTING

    @property
    def ready(self) -> bool:
        return self.state == READY

    def mark_ready(self) -> None:
        """Startup finished; a drain that began during startup wins."""
        if self.state == STARTING:
            self.state = READY

    def begin_drain(self) -> None:
        """Shutdown requested: refuse readiness from now on, for good."""
        self.state = DRAINING
