"""Wire format of the API: what a sender may post and what the engine answers.

Requests are strict (no type coercion, no unknown fields) because a silently accepted typo in a field name
would route a message on defaults. pydantic-core validates the raw bytes in one step on the hot path; the
answer models are the published contract in ``/openapi.json`` (the hot path writes the same shape directly).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# The input contract (README "Input contract"). Ids, sources and types reach HTTP headers, log lines and the
# idempotency store, so they are drawn from a declared alphabet: visible ASCII without quotes, backslash,
# spaces or separators that mean something in a header, a log or a Prometheus label. Metadata is free text
# for the rules but never carries control characters or line separators (U+2028/U+2029/U+0085).
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
ID_CHARS = ALNUM + "._:/@+=~-"  # the first character is ALNUM
NAME_CHARS = ALNUM + "._:/@+-"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+=~-]*$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
MAX_TTL_MS = 86_400_000  # the largest ROUTER_MAX_TTL_MS; the service's own maximum then caps it
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NAME_PATTERN)]
MetaValue = Annotated[str, StringConstraints(max_length=256, pattern=TEXT_PATTERN)]
ClassName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Outcome = Literal["queued", "decided", "shadow", "duplicate"]


class RouteRequest(BaseModel):
    """One message to route; ``id`` is the idempotency key."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str = Field(
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="Sender's unique message id (idempotency key): letters, digits and ._:/@+=~- , "
        "starting with a letter or digit.",
    )
    source: str = Field(
        min_length=1,
        max_length=256,
        pattern=NAME_PATTERN,
        description="Producing system: letters, digits and ._:/@+- , starting with a letter or digit.",
    )
    type: str = Field(
        min_length=1,
        max_length=128,
        pattern=NAME_PATTERN,
        description="Message type; the main classification input (same alphabet as source).",
    )
    priority: int | None = Field(default=None, ge=0, le=9, description="Priority hint, 0 (highest) to 9.")
    ttl_ms: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TTL_MS,
        description="Time to live in milliseconds (at most 86400000); 0 or absent means the service "
        "default, larger than the service maximum is capped. A message not dispatched in time expires "
        "(counted, never delivered).",
    )
    metadata: dict[MetaKey, MetaValue] | None = Field(
        default=None, max_length=32, description="Routing metadata (string values) that rules may match on."
    )
    payload: dict[str, Any] | None = Field(
        default=None, description="Message body, delivered as sent; keyword rules read its text."
    )


class BatchRequest(BaseModel):
    """Several messages routed in order, each as if posted alone."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    messages: list[RouteRequest] = Field(
        min_length=1, max_length=10_000, description="At most ROUTER_MAX_BATCH_SIZE messages."
    )


class RouteDecision(BaseModel):
    """Where the engine routes a message and what it did with it."""

    message_id: str
    classification: str = Field(description="Message class, e.g. strategic or tactical.")
    priority: int
    queue: str
    destination: str
    engine_version: str = Field(description="Engine that decided (a duplicate reports the original decider).")
    mode: Literal["shadow", "live"]
    rule: str = Field(description="Name of the classification rule that matched.")
    explanation: str = Field(description="Why that rule matched.")
    strategy: Literal["least_loaded", "round_robin"]
    outcome: Outcome = Field(
        description="queued: accepted for dispatch; decided: no dispatch configured; shadow: mirrored or "
        "shadow-mode traffic, never dispatched; duplicate: id seen within the idempotency window, "
        "the earlier decision is returned and nothing is dispatched again."
    )


class BatchItem(BaseModel):
    """One message's result inside a batch answer: a decision (status 200) or an error."""

    status: int
    decision: RouteDecision | None = None
    detail: str | None = None
    retry_after_s: int | None = None


class BatchDecision(BaseModel):
    results: list[BatchItem]


class ErrorItem(BaseModel):
    """One validation problem, in the same shape FastAPI uses for its own 422 answers."""

    type: str
    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """Error answer: ``detail`` is a sentence or a list of validation problems."""

    detail: str | list[ErrorItem]
    retry_after_s: int | None = None


class FaultUpdate(BaseModel):
    """Admin change of the fault injection; absent fields keep their value."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool | None = None
    latency_ms: float | None = Field(default=None, ge=0, le=60_000)
    latency_ms_by_class: dict[ClassName, Annotated[float, Field(ge=0, le=60_000)]] | None = Field(
        default=None, max_length=64
    )
    error_rate_by_class: dict[ClassName, Annotated[float, Field(ge=0, le=1)]] | None = Field(
        default=None, max_length=64
    )
    error_rate: float | None = Field(default=None, ge=0, le=1)
    memory_growth_kb: float | None = Field(default=None, ge=0, le=1024)
    memory_max_mb: float | None = Field(default=None, ge=0, le=4096)
