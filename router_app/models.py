"""Wire format of ``/v1/route``: what a sender may post and what the engine answers.

Requests are strict (no type coercion, no unknown fields) because a silently accepted typo in a field name
would route a message on defaults; the answer model is the published contract in ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RouteRequest(BaseModel):
    """One message to route."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str = Field(min_length=1, max_length=128, description="Sender's unique message id.")
    source: str = Field(min_length=1, max_length=256, description="Producing system.")
    type: str = Field(min_length=1, max_length=128, description="Message type; decides the classification.")
    priority: int | None = Field(default=None, ge=0, le=9, description="Priority hint, 0 (highest) to 9.")
    ttl_ms: int | None = Field(default=None, ge=0, description="Time to live in milliseconds.")
    payload: dict[str, Any] | None = Field(default=None, description="Opaque body, not inspected yet.")


class RouteDecision(BaseModel):
    """Where the engine routes a message (nothing is dispatched yet)."""

    message_id: str
    classification: Literal["strategic", "tactical"]
    priority: int
    queue: str
    destination: str
    engine_version: str
    mode: Literal["shadow", "live"]
    rule: str


class ErrorItem(BaseModel):
    """One validation problem, in the same shape FastAPI uses for its own 422 answers."""

    type: str
    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """Error answer: ``detail`` is a sentence or a list of validation problems."""

    detail: str | list[ErrorItem]
