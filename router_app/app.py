"""Application assembly: the FastAPI app for operations and documentation, wrapped by the edge hot path.

``create_app`` returns the ``EdgeApp`` (what uvicorn serves). FastAPI serves ``/health``, ``/health/details``,
``/ready``, ``/version``, ``/metrics``, ``/openapi.json`` and the admin endpoints, and documents the two
routing endpoints that the edge layer answers itself.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from router_app import metrics
from router_app.config import Settings, load_settings
from router_app.edge import BATCH_PATH, ROUTE_PATH, EdgeApp, error_items
from router_app.engine import RoutingEngine
from router_app.lifecycle import Lifecycle
from router_app.logs import get_logger
from router_app.models import BatchDecision, BatchRequest, ErrorBody, FaultUpdate, RouteDecision, RouteRequest

ROUTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": RouteDecision, "description": "Routing decision"},
    400: {"model": ErrorBody, "description": "Body is not valid JSON"},
    413: {"model": ErrorBody, "description": "Body over ROUTER_MAX_BODY_BYTES"},
    415: {"model": ErrorBody, "description": "Content-Type is not application/json"},
    422: {"model": ErrorBody, "description": "Body breaks the schema (loc names the field) or repeats a key"},
    429: {"model": ErrorBody, "description": "Class queue full; retry after the Retry-After header"},
    503: {
        "model": ErrorBody,
        "description": "No destination available, store unavailable, or injected fault",
    },
}


ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Body is not valid JSON"},
    401: {"model": ErrorBody, "description": "Bearer token missing or wrong"},
    404: {"model": ErrorBody, "description": "Admin endpoints disabled (no ROUTER_ADMIN_TOKEN)"},
    413: {"model": ErrorBody, "description": "Body over ROUTER_MAX_BODY_BYTES"},
    422: {"model": ErrorBody, "description": "Body breaks the schema"},
}


def create_app(settings: Settings | None = None, engine: RoutingEngine | None = None) -> EdgeApp:
    """Build the application for ``settings`` (default: from the environment, validated)."""
    if settings is None:
        settings = load_settings(os.environ)
    lifecycle = Lifecycle()
    engine = engine if engine is not None else RoutingEngine(settings)
    log = get_logger()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        lifecycle.mark_ready()
        yield
        lifecycle.begin_drain()
        await engine.stop(settings.drain_timeout_s)

    api = FastAPI(
        title="msgroute router",
        version=settings.version,
        summary="Classifies messages, queues them by class, delivers them to the least-loaded destination.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    api.state.settings = settings
    api.state.lifecycle = lifecycle
    api.state.engine = engine
    metrics.set_build_info(settings.version, settings.mode)

    @api.post(
        ROUTE_PATH,
        summary="Classify one message, choose its destination and queue it for dispatch",
        responses=ROUTE_RESPONSES,
    )
    async def route(message: RouteRequest) -> Response:  # pragma: no cover - the edge layer answers this path
        """Served by ``EdgeApp``; this handler only documents the endpoint."""
        return JSONResponse({"detail": "served by the edge layer"}, 500)

    @api.post(
        BATCH_PATH,
        summary="Route several messages in order, each as if posted alone",
        responses={**ROUTE_RESPONSES, 200: {"model": BatchDecision, "description": "One result per message"}},
    )
    async def route_batch(
        batch: BatchRequest,
    ) -> Response:  # pragma: no cover - the edge layer answers this path
        """Served by ``EdgeApp``; this handler only documents the endpoint."""
        return JSONResponse({"detail": "served by the edge layer"}, 500)

    @api.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/health/details", summary="Breakers, queues, destinations, idempotency store, flags, faults")
    async def health_details() -> dict[str, Any]:
        return {
            "status": "ok",
            "state": lifecycle.state,
            "version": settings.version,
            "mode": settings.mode,
            **engine.describe(),
        }

    @api.get("/ready", summary="Readiness: 503 while starting or draining")
    async def ready() -> JSONResponse:
        return JSONResponse({"status": lifecycle.state}, status_code=200 if lifecycle.ready else 503)

    @api.get("/version", summary="Running engine version and mode")
    async def version() -> dict[str, str]:
        return {"version": settings.version, "mode": settings.mode}

    @api.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, errors = error_items(exc.errors())  # the routing endpoints' shape: input never echoed
        return JSONResponse({"detail": errors}, status)

    # The bearer token of every /admin/ path is checked by the edge layer before any body is read; the
    # Authorization parameters below only document it.
    @api.get("/admin/faults", summary="Fault injection settings (bearer token)", responses=ADMIN_RESPONSES)
    async def get_faults(authorization: Annotated[str | None, Header()] = None) -> Any:
        return engine.faults.describe()

    @api.put("/admin/faults", summary="Change fault injection (bearer token)", responses=ADMIN_RESPONSES)
    async def put_faults(update: FaultUpdate, authorization: Annotated[str | None, Header()] = None) -> Any:
        named = set(update.latency_ms_by_class or {}) | set(update.error_rate_by_class or {})
        unknown = sorted(named - set(engine.rules.classes))
        if unknown:
            return JSONResponse({"detail": f"unknown class(es) {', '.join(unknown)}"}, 422)
        engine.faults.configure(**update.model_dump(exclude_none=True))
        log.warning("fault injection changed", extra={"fields": {"faults": engine.faults.describe()}})
        return engine.faults.describe()

    @api.delete(
        "/admin/faults",
        summary="Turn fault injection off and clear its settings (bearer token)",
        responses=ADMIN_RESPONSES,
    )
    async def delete_faults(authorization: Annotated[str | None, Header()] = None) -> Any:
        engine.faults.reset()
        log.warning("fault injection turned off", extra={"fields": {"faults": engine.faults.describe()}})
        return engine.faults.describe()

    return EdgeApp(
        api,
        engine,
        settings.version,
        settings.mode,
        settings.max_body_bytes,
        settings.max_batch_size,
        settings.admin_token,
    )
