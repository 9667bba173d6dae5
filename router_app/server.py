"""Process entry point: validate config, log it, serve with uvicorn, drain on SIGTERM.

On SIGTERM ``/ready`` flips to 503 at once; uvicorn then stops accepting connections and lets requests in
flight finish (up to ``ROUTER_GRACEFUL_TIMEOUT_S``, under Docker's 10 s stop timeout) before exiting 0.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import asdict
from types import FrameType

import uvicorn

from router_app.app import create_app
from router_app.config import ConfigError, config_warnings, load_settings
from router_app.lifecycle import Lifecycle
from router_app.logs import configure_logging, get_logger

EXIT_CONFIG_ERROR = 2
EXIT_STARTUP_FAILURE = 3


class DrainingServer(uvicorn.Server):
    """uvicorn's server, plus: the first exit signal marks the app as draining before shutdown starts."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.lifecycle.begin_drain()
        super().handle_exit(sig, frame)


def _exit_after_drain(sig: int, frame: FrameType | None) -> None:
    """uvicorn re-raises the captured signal after its graceful shutdown; by then the drain is complete, so
    exit cleanly instead of dying by the signal (exit 143) and looking like a crash."""
    raise SystemExit(0)


def main(env: Mapping[str, str] = os.environ) -> int:
    """Run the service until a signal stops it; returns the process exit code."""
    configure_logging()
    log = get_logger()
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        log.error(
            f"invalid configuration: {exc}",
            extra={"fields": {"variable": exc.variable, "problem": exc.problem}},
        )
        return EXIT_CONFIG_ERROR
    configure_logging(settings.log_level)
    for warning in config_warnings(env, settings):
        log.warning(warning)
    log.info("starting router", extra={"fields": {"config": asdict(settings)}})

    app = create_app(settings)
    server = DrainingServer(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            loop="auto",
            workers=1,
            access_log=False,
            log_config=None,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=settings.graceful_timeout_s,
        ),
        app.state.lifecycle,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_after_drain)
    try:
        server.run()
    finally:
        log.info("router stopped", extra={"fields": {"started": server.started}})
    return 0 if server.started else EXIT_STARTUP_FAILURE
