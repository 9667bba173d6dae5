"""Process entry point: validate config, log it, serve with uvicorn, drain on SIGTERM.

On SIGTERM ``/ready`` flips to 503 at once; uvicorn then stops accepting connections and lets requests in
flight finish (up to ``ROUTER_GRACEFUL_TIMEOUT_S``); then the dispatcher delivers what is still queued (up to
``ROUTER_DRAIN_TIMEOUT_S``, reporting anything left as abandoned) before the process exits 0. The two timeouts
together must stay under the container stop timeout (the router role gives 20 s).

uvloop and httptools are used when installed (they are pinned in requirements.txt): together they roughly
halve the per-request cost of the server itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
from collections.abc import Mapping
from dataclasses import asdict
from types import FrameType

import uvicorn

from router_app.app import create_app
from router_app.config import ConfigError, Settings, config_warnings, load_settings, masked_url
from router_app.lifecycle import Lifecycle
from router_app.logs import configure_logging, get_logger
from router_app.protocol import Limits, guarded_protocol

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


def limits(settings: Settings) -> Limits:
    return Limits(
        max_request_line=settings.max_request_line_bytes,
        max_head=settings.max_header_bytes,
        max_headers=settings.max_headers,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=settings.max_connections,
    )


def raise_file_limit(connections: int) -> str | None:
    """Let the process hold ``connections`` sockets plus its own files; a warning when it cannot."""
    needed = connections + 64  # listening socket, Redis, destinations' pools, logs
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        return (
            f"open file limit {soft} is below ROUTER_MAX_CONNECTIONS + 64 = {needed}: past it new "
            "connections are refused by the kernel instead of answered 503"
        )
    return None


def redacted(settings: Settings) -> dict[str, object]:
    """Settings for the start log line, secrets masked."""
    values = asdict(settings)
    if values.get("admin_token"):
        values["admin_token"] = "***"
    if values.get("redis_url"):
        values["redis_url"] = masked_url(values["redis_url"])
    return values


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
    file_warning = raise_file_limit(settings.max_connections)
    if file_warning:
        log.warning(file_warning)
    log.info("starting router", extra={"fields": {"config": redacted(settings)}})
    if not settings.dispatching:
        log.info("decide-only: the destinations have no URLs, so nothing is dispatched")
    try:
        app = create_app(settings)
    except ConfigError as exc:
        log.error(
            f"invalid configuration: {exc}",
            extra={"fields": {"variable": exc.variable, "problem": exc.problem}},
        )
        return EXIT_CONFIG_ERROR
    # Everything allocated so far (framework, models, rules) lives as long as the process. Freezing it keeps
    # the cyclic GC from walking ~50k objects on each full collection: 15-20 ms pauses under load otherwise.
    gc.collect()
    gc.freeze()
    server = DrainingServer(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            loop="auto",
            http=guarded_protocol(limits(settings)),
            proxy_headers=False,  # nothing reads the client address; saves a middleware per request
            workers=1,
            access_log=False,
            log_config=None,
            lifespan="on",
            server_header=False,
            timeout_keep_alive=settings.keepalive_timeout_s,  # type: ignore[arg-type]  # call_later takes a float
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
