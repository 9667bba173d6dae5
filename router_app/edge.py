"""Outermost ASGI layer: the hot path for ``POST /v1/route`` (and the batch route), headers on every answer.

Routing requests are served here as plain ASGI instead of through FastAPI: validating the raw bytes with
pydantic-core and writing the answer with orjson costs a few microseconds, while the framework's routing,
dependency and response machinery cost several times the whole of it (see ``bench/router``). Every other path
(health, metrics, OpenAPI, admin) goes to the FastAPI app, which also documents the two routes.

Because this layer wraps everything, every answer (500s included) carries ``X-Router-Version``,
``X-Router-Mode`` and ``X-Request-Id``, and ``/v1/route`` is measured end to end for the SLA metrics.

A routing request's W3C ``traceparent`` is validated here (``tracing.py``; a malformed one is replaced and
counted); its trace id is on every log line written while the request is handled and travels with the message
to the destination.
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import os
import re
import time
from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from router_app import metrics, tracing
from router_app.engine import Answer, RoutingEngine
from router_app.logs import get_logger, request_id_var, trace_id_var
from router_app.models import BatchRequest, RouteRequest
from router_app.rawjson import batch_items, count_keys, has_duplicate_keys

ROUTE_PATH = "/v1/route"
BATCH_PATH = "/v1/route/batch"
MIRRORED_HEADER = b"x-msgroute-mirrored"
REQUEST_ID_HEADER = b"x-request-id"
TRACEPARENT_HEADER = b"traceparent"
ADMIN_PREFIX = "/admin/"
_REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Only JSON is routed: a browser may POST text/plain, a form or multipart cross-site without a preflight.
_JSON_TYPE_RE = re.compile(rb"application/(?:[a-z0-9.+-]*\+)?json\s*(?:;.*)?", re.IGNORECASE)
_CLOSE = [(b"connection", b"close")]


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


class ClientGone(Exception):
    """The client disconnected before sending the whole body."""


def error_items(raw: Iterable[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """400 for a body that is not JSON at all, 422 for JSON that breaks the schema (``loc`` names the
    field); the input is never echoed."""
    errors = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in raw]
    status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
    return status, errors


def validation_errors(exc: ValidationError) -> tuple[int, list[dict[str, Any]]]:
    return error_items(exc.errors(include_url=False, include_context=False, include_input=False))


DUPLICATE_KEY = {"detail": [{"type": "duplicate_key", "loc": [], "msg": "an object repeats a key"}]}


def admin_refusal(admin_token: str | None, authorization: bytes | None) -> tuple[int, str] | None:
    """``None`` when the bearer token is right; otherwise the status and why (404 when no token is set)."""
    if admin_token is None:
        return 404, "admin endpoints are disabled (ROUTER_ADMIN_TOKEN is not set)"
    scheme, _sep, token = (authorization or b"").partition(b" ")
    if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), admin_token.encode()):
        return 401, "admin token missing or wrong"
    return None


class Head:
    """What the edge reads from a request's headers, in one pass."""

    __slots__ = ("authorization", "chunked", "declared", "json", "mirrored", "request_id", "traceparent")

    def __init__(self) -> None:
        self.request_id: bytes | None = None
        self.mirrored = False
        self.declared: int | None = None
        self.chunked = False
        self.json = False
        self.authorization: bytes | None = None
        self.traceparent: bytes | None = None


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
        self,
        api: Any,
        engine: RoutingEngine,
        version: str,
        mode: str,
        max_body: int,
        max_batch: int,
        admin_token: str | None = None,
    ):
        self.api = api
        self.state = api.state
        self.engine = engine
        self.shadow_mode = mode == "shadow"
        self.max_body = max_body
        self.max_batch = max_batch
        self.admin_token = admin_token
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
            head = self._head(scope["headers"])
            request_id = head.request_id or self.ids.next().encode()
            token = request_id_var.set(request_id.decode())
            try:
                await self._other(scope, receive, send, head, request_id)
            finally:
                request_id_var.reset(token)

    async def _other(self, scope: Scope, receive: Receive, send: Send, head: Head, request_id: bytes) -> None:
        """FastAPI's paths, behind the same gates as routing: the admin token, then the body limit, both
        before a byte of the body is read (FastAPI itself would read and parse any body first)."""
        if scope["path"].startswith(ADMIN_PREFIX):
            refused = admin_refusal(self.admin_token, head.authorization)
            if refused is not None:
                status, detail = refused
                extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
                await self._respond(send, status, {"detail": detail}, request_id, extra=[*extra, *_CLOSE])
                return
        if head.declared is not None or head.chunked:
            try:
                body = await self._read_body(receive, head.declared)
            except BodyTooLarge:
                await self._too_large(send, request_id)
                return
            except ClientGone:
                return
            receive = _replay(body, receive)
        await self.api(scope, receive, self._stamping(send, request_id))

    # -- helpers ---------------------------------------------------------------------------------------------

    def _head(self, headers: Iterable[tuple[bytes, bytes]]) -> Head:
        head = Head()
        head.mirrored = self.shadow_mode
        for name, value in headers:
            if name == b"content-length":
                # A non-numeric length never reaches here (the parser refuses it); be safe all the same.
                head.declared = int(value) if value.isdigit() and len(value) < 19 else self.max_body + 1
            elif name == b"content-type":
                head.json = _JSON_TYPE_RE.fullmatch(value) is not None
            elif name == b"transfer-encoding":
                head.chunked = True
            elif name == MIRRORED_HEADER:
                head.mirrored = head.mirrored or value.strip() == b"1"
            elif name == REQUEST_ID_HEADER and _REQUEST_ID_RE.fullmatch(value):
                head.request_id = value
            elif name == b"authorization":
                head.authorization = value
            elif name == TRACEPARENT_HEADER:
                # Repeated: malformed by the spec; "" never parses, so the request gets a new trace.
                head.traceparent = value if head.traceparent is None else b""
        return head

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
        self,
        send: Send,
        status: int,
        body: Any,
        request_id: bytes,
        retry_after: int | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
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
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _too_large(self, send: Send, request_id: bytes) -> None:
        """413, and the connection is closed: the rest of the body is never read."""
        detail = {"detail": f"request body exceeds {self.max_body} bytes"}
        await self._respond(send, 413, detail, request_id, extra=_CLOSE)

    async def _read_request(self, receive: Receive, send: Send, head: Head, request_id: bytes) -> bytes | int:
        """The body of a routing request, or the status it was refused with (415, 413, 400 client gone)."""
        if not head.json:
            detail = {"detail": "Content-Type must be application/json"}
            await self._respond(send, 415, detail, request_id, extra=_CLOSE)
            return 415
        try:
            return await self._read_body(receive, head.declared)
        except BodyTooLarge:
            await self._too_large(send, request_id)
            return 413
        except ClientGone:
            await self._respond(
                send, 400, {"detail": "client disconnected before sending the body"}, request_id
            )
            return 400

    async def _internal_error(self, send: Send, request_id: bytes) -> None:
        """A 500 if the answer has not started yet; otherwise the connection is beyond saving (logged)."""
        with contextlib.suppress(Exception):
            await self._respond(send, 500, {"detail": "internal error"}, request_id)

    # -- /v1/route -------------------------------------------------------------------------------------------

    async def _measured(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every request to the route path counts for the SLA metrics, whatever its method or outcome."""
        start = time.perf_counter()
        head = self._head(scope["headers"])
        request_id = head.request_id or self.ids.next().encode()
        token = request_id_var.set(request_id.decode())
        trace = _trace(head)
        trace_token = trace_id_var.set(trace.trace_id)
        status = 500
        message_class = None
        try:
            if scope["method"] == "POST":
                status, message_class = await self._route(receive, send, request_id, head, trace)
            else:
                status = 405
                await self.api(scope, receive, self._stamping(send, request_id))
        except Exception:
            self._log.exception("route request failed")
            await self._internal_error(send, request_id)
        finally:
            duration = time.perf_counter() - start
            metrics.observe_route(status, head.mirrored, duration)
            if message_class is not None:
                metrics.observe_message(message_class, duration)
            request_id_var.reset(token)
            trace_id_var.reset(trace_token)

    async def _route(
        self, receive: Receive, send: Send, request_id: bytes, head: Head, trace: tracing.Trace
    ) -> tuple[int, str | None]:
        body = await self._read_request(receive, send, head, request_id)
        if isinstance(body, int):
            return body, None
        try:
            message = RouteRequest.model_validate_json(body)
        except ValidationError as exc:
            status, errors = validation_errors(exc)
            await self._respond(send, status, {"detail": errors}, request_id)
            return status, None
        keys = len(message.model_fields_set) + count_keys(message.metadata, message.payload)
        if has_duplicate_keys(body, keys):
            await self._respond(send, 422, DUPLICATE_KEY, request_id)
            return 422, None
        answer = await self.engine.submit(
            message, body, head.mirrored, request_id.decode(), trace.traceparent
        )
        metrics.count_message(answer.message_class, answer.outcome)
        await self._respond(send, answer.status, answer.body, request_id, answer.retry_after)
        return answer.status, answer.message_class

    # -- /v1/route/batch -------------------------------------------------------------------------------------

    async def _batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = self._head(scope["headers"])
        request_id = head.request_id or self.ids.next().encode()
        token = request_id_var.set(request_id.decode())
        trace = _trace(head)
        trace_token = trace_id_var.set(trace.trace_id)
        try:
            await self._route_batch(receive, send, request_id, head, trace)
        except Exception:
            self._log.exception("batch request failed")
            await self._internal_error(send, request_id)
        finally:
            request_id_var.reset(token)
            trace_id_var.reset(trace_token)

    async def _route_batch(
        self, receive: Receive, send: Send, request_id: bytes, head: Head, trace: tracing.Trace
    ) -> None:
        body = await self._read_request(receive, send, head, request_id)
        if isinstance(body, int):
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
        keys = 1 + sum(len(m.model_fields_set) + count_keys(m.metadata, m.payload) for m in batch.messages)
        if has_duplicate_keys(body, keys):
            await self._respond(send, 422, DUPLICATE_KEY, request_id)
            return
        raws = batch_items(body)
        if len(raws) != len(batch.messages):  # a bug in the scanner: refuse before admitting anything
            raise RuntimeError(f"found {len(raws)} raw items for {len(batch.messages)} messages")
        results = []
        retry_after = None
        # Each message is delivered as it would have been posted alone: its own bytes, as sent.
        for message, raw in zip(batch.messages, raws, strict=True):
            try:
                answer = await self.engine.submit(
                    message, raw, head.mirrored, request_id.decode(), trace.traceparent
                )
            except Exception:
                # The engine gave back whatever this message had reserved; the others stand as answered.
                self._log.exception("batch item failed", extra={"fields": {"message_id": message.id}})
                results.append({"status": 500, "detail": "internal error", "retry_after_s": None})
                continue
            metrics.count_message(answer.message_class, answer.outcome)
            results.append(_batch_item(answer))
            if answer.retry_after is not None:
                retry_after = max(retry_after or 0, answer.retry_after)
        await self._respond(send, 200, {"results": results}, request_id, retry_after)


def _trace(head: Head) -> tracing.Trace:
    trace = tracing.start(head.traceparent)
    if head.traceparent is not None and not trace.accepted:
        metrics.TRACEPARENT_REPLACED.inc()
    return trace


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _batch_item(answer: Answer) -> dict[str, Any]:
    if answer.status == 200:
        return {"status": 200, "decision": answer.body}
    return {"status": answer.status, "detail": answer.body.get("detail"), "retry_after_s": answer.retry_after}
