"""HTTP layer: the FastAPI application and its endpoints.

``/v1/route`` reads and validates its body itself (pydantic-core parses the raw bytes in one step) so the
size limit applies before any parsing, and bad input of every kind maps to a 4xx instead of a 5xx.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp

from router_app import metrics
from router_app.config import Settings, load_settings
from router_app.edge import ROUTE_PATH, EdgeMiddleware
from router_app.engine import RoutingEngine
from router_app.faults import build_injector
from router_app.lifecycle import Lifecycle
from router_app.models import ErrorBody, RouteDecision, RouteRequest


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


class RouterAPI(FastAPI):
    """FastAPI with ``EdgeMiddleware`` outside everything else, Starlette's 500 handler included."""

    edge_version = "dev"
    edge_mode = "live"

    def build_middleware_stack(self) -> ASGIApp:
        return EdgeMiddleware(super().build_middleware_stack(), self.edge_version, self.edge_mode)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes without buffering them.

    A declared Content-Length is checked first; a chunked body is counted as it streams in.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(status: int, detail: str | list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def validation_response(exc: ValidationError) -> JSONResponse:
    """400 for a body that is not JSON at all, 422 for JSON that breaks the schema; input is never echoed."""
    errors = [
        {"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
    return error_response(status, errors)


def _route_openapi() -> dict[str, Any]:
    """Document the body that the handler parses by hand (FastAPI cannot infer it from the signature)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RouteRequest.model_json_schema()}},
        }
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for ``settings`` (default: from the environment, validated)."""
    if settings is None:
        settings = load_settings(os.environ)
    lifecycle = Lifecycle()
    engine = RoutingEngine(settings)
    injector = build_injector(settings)
    limit = settings.max_body_bytes

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        lifecycle.mark_ready()
        yield
        lifecycle.begin_drain()

    app = RouterAPI(
        title="msgroute router",
        version=settings.version,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.edge_version = settings.version
    app.edge_mode = settings.mode
    app.state.settings = settings
    app.state.lifecycle = lifecycle
    app.state.engine = engine
    metrics.set_build_info(settings.version, settings.mode)

    @app.post(
        ROUTE_PATH,
        summary="Classify a message and choose its destination",
        responses={
            200: {"model": RouteDecision, "description": "Routing decision"},
            400: {"model": ErrorBody, "description": "Body is not valid JSON"},
            413: {"model": ErrorBody, "description": "Body over ROUTER_MAX_BODY_BYTES"},
            422: {"model": ErrorBody, "description": "Body breaks the schema"},
            503: {"model": ErrorBody, "description": "Injected fault"},
        },
        openapi_extra=_route_openapi(),
    )
    async def route(request: Request) -> Response:
        try:
            body = await read_body(request, limit)
        except BodyTooLarge:
            return error_response(413, f"request body exceeds {limit} bytes")
        except ClientDisconnect:
            return error_response(400, "client disconnected before sending the body")
        try:
            message = RouteRequest.model_validate_json(body)
        except ValidationError as exc:
            return validation_response(exc)
        if injector is not None and await injector.apply():
            return error_response(503, "fault injected")
        return Response(engine.route(message).model_dump_json(), media_type="application/json")

    @app.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: 503 while starting or draining")
    async def ready() -> JSONResponse:
        return JSONResponse({"status": lifecycle.state}, status_code=200 if lifecycle.ready else 503)

    @app.get("/version", summary="Running engine version and mode")
    async def version() -> dict[str, str]:
        return {"version": settings.version, "mode": settings.mode}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    return app
