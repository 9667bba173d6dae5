"""Outermost ASGI layer: the hot path for ``POST /v1/route`` (and the batch route), headers on every answer.

Routing requests are served here as plain ASGI instead of through FastAPI: validating the raw bytes with
pydantic-core and writing the answer with orjson costs a few microseconds, while the framework's routing,
dependency and response machinery cost several times the whole of it (see ``bench/router``). Every other path
(health, metrics, OpenAPI, admin) goes to the FastAPI app, which also documents the two routes.

Because this layer wraps everything, every answer (500s included) carries ``X-Router-Version``,
``X-Router-Mode`` and ``X-Request-Id``, and ``/v1/route`` is measured end to end for the SLA metrics.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from router_app import metrics
from router_app.engine import Answer, RoutingEngine
from router_app.logs import get_logger, request_id_var
from router_app.models import BatchRequest, RouteRequest

ROUTE_PATH = "/v1/route"
BATCH_PATH = "/v1/route/batch"
MIRRORED_HEADER = b"x-msgroute-mirrored"
REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID_RE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


class ClientGone(Exception):
    """The client disconnected before sending the whole body."""


def validation_errors(exc: ValidationError) -> tuple[int, list[dict[str, Any]]]:
    """400 for a body that is not JSON at all, 422 for JSON that breaks the schema; input is never echoed."""
    errors = [
        {"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
    return status, errors


class RequestIds:
    """``<boot>-<n>``: unique per process run, and far cheaper than a UUID per request."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"


class EdgeApp:
    """The ASGI application uvicorn serves."""

    def __init__(
        self, api: Any, engine: RoutingEngine, version: str, mode: str, max_body: int, max_batch: int
    ):
        self.api = api
        self.state = api.state
        self.engine = engine
        self.shadow_mode = mode == "shadow"
        self.max_body = max_body
        self.max_batch = max_batch
        self.stamp = [(b"x-router-version", version.encode()), (b"x-router-mode", mode.encode())]
        self.ids = RequestIds()
        self._log = get_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        path = scope["path"]
        if path == ROUTE_PATH:
            await self._measured(scope, receive, send)
        elif path == BATCH_PATH and scope["method"] == "POST":
            await self._batch(scope, receive, send)
        else:
            request_id = self._request_id(scope["headers"])[0]
            token = request_id_var.set(request_id.decode())
            try:
                await self.api(scope, receive, self._stamping(send, request_id))
            finally:
                request_id_var.reset(token)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _request_id(self, headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bool, int | None]:
        """(request id, mirrored, declared content length) from one pass over the headers."""
        request_id = None
        mirrored = self.shadow_mode
        declared = None
        for name, value in headers:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == MIRRORED_HEADER:
                mirrored = mirrored or value.strip() == b"1"
            elif name == REQUEST_ID_HEADER and _REQUEST_ID_RE.match(value):
                request_id = value
        return request_id or self.ids.next().encode(), mirrored, declared

    def _stamping(self, send: Send, request_id: bytes) -> Send:
        headers = [*self.stamp, (REQUEST_ID_HEADER, request_id)]

        async def send_stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        return send_stamped

    async def _read_body(self, receive: Receive, declared: int | None) -> bytes:
        """The whole body, refusing more than the limit without buffering it (declared or streamed)."""
        if declared is not None and declared > self.max_body:
            raise BodyTooLarge
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.max_body:
                raise BodyTooLarge
            return body
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _respond(
        self, send: Send, status: int, body: Any, request_id: bytes, retry_after: int | None = None
    ) -> None:
        payload = orjson.dumps(body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *self.stamp,
            (REQUEST_ID_HEADER, request_id),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _internal_error(self, send: Send, request_id: bytes) -> None:
        """A 500 if the answer has not started yet; otherwise the connection is beyond saving (logged)."""
        with contextlib.suppress(Exception):
            await self._respond(send, 500, {"detail": "internal error"}, request_id)

    # -- /v1/route -------------------------------------------------------------------------------------------

    async def _measured(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every request to the route path counts for the SLA metrics, whatever its method or outcome."""
        start = time.perf_counter()
        request_id, mirrored, declared = self._request_id(scope["headers"])
        token = request_id_var.set(request_id.decode())
        status = 500
        message_class = None
        try:
            if scope["method"] == "POST":
                status, message_class = await self._route(receive, send, request_id, mirrored, declared)
            else:
                status = 405
                await self.api(scope, receive, self._stamping(send, request_id))
        except Exception:
            self._log.exception("route request failed")
            await self._internal_error(send, request_id)
        finally:
            duration = time.perf_counter() - start
            metrics.observe_route(status, mirrored, duration)
            if message_class is not None:
                metrics.observe_message(message_class, duration)
            request_id_var.reset(token)

    async def _route(
        self, receive: Receive, send: Send, request_id: bytes, mirrored: bool, declared: int | None
    ) -> tuple[int, str | None]:
        try:
            body = await self._read_body(receive, declared)
        except BodyTooLarge:
            await self._respond(
                send, 413, {"detail": f"request body exceeds {self.max_body} bytes"}, request_id
            )
            return 413, None
        except ClientGone:
            await self._respond(
                send, 400, {"detail": "client disconnected before sending the body"}, request_id
            )
            return 400, None
        try:
            message = RouteRequest.model_validate_json(body)
        except ValidationError as exc:
            status, errors = validation_errors(exc)
            await self._respond(send, status, {"detail": errors}, request_id)
            return status, None
        answer = await self.engine.submit(message, body, mirrored, request_id.decode())
        metrics.count_message(answer.message_class, answer.outcome)
        await self._respond(send, answer.status, answer.body, request_id, answer.retry_after)
        return answer.status, answer.message_class

    # -- /v1/route/batch -------------------------------------------------------------------------------------

    async def _batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id, mirrored, declared = self._request_id(scope["headers"])
        token = request_id_var.set(request_id.decode())
        try:
            await self._route_batch(receive, send, request_id, mirrored, declared)
        except Exception:
            self._log.exception("batch request failed")
            await self._internal_error(send, request_id)
        finally:
            request_id_var.reset(token)

    async def _route_batch(
        self, receive: Receive, send: Send, request_id: bytes, mirrored: bool, declared: int | None
    ) -> None:
        try:
            body = await self._read_body(receive, declared)
        except BodyTooLarge:
            await self._respond(
                send, 413, {"detail": f"request body exceeds {self.max_body} bytes"}, request_id
            )
            return
        except ClientGone:
            await self._respond(
                send, 400, {"detail": "client disconnected before sending the body"}, request_id
            )
            return
        try:
            batch = BatchRequest.model_validate_json(body)
        except ValidationError as exc:
            status, errors = validation_errors(exc)
            await self._respond(send, status, {"detail": errors}, request_id)
            return
        if len(batch.messages) > self.max_batch:
            detail = f"a batch holds at most {self.max_batch} messages, got {len(batch.messages)}"
            await self._respond(send, 422, {"detail": detail}, request_id)
            return
        results = []
        retry_after = None
        for message in batch.messages:
            # Each message is delivered as it would have been posted alone.
            answer = await self.engine.submit(
                message, message.model_dump_json(exclude_unset=True).encode(), mirrored, request_id.decode()
            )
            metrics.count_message(answer.message_class, answer.outcome)
            results.append(_batch_item(answer))
            if answer.retry_after is not None:
                retry_after = max(retry_after or 0, answer.retry_after)
        await self._respond(send, 200, {"results": results}, request_id, retry_after)


def _batch_item(answer: Answer) -> dict[str, Any]:
    if answer.status == 200:
        return {"status": 200, "decision": answer.body}
    return {"status": answer.status, "detail": answer.body.get("detail"), "retry_after_s": answer.retry_after}
