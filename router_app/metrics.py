"""Prometheus metrics that the rollout gates read.

Names, labels and buckets are a contract with the gate queries and alert rules: change them together. The
buckets include the SLA thresholds (45, 48, 50 ms) so ``histogram_quantile`` at a threshold is exact rather
than interpolated. Series live in the default registry, next to the process collector that gives
``process_resident_memory_bytes`` for the memory gate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import prometheus_client
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

# ``*_created`` series double the scrape size and no gate reads them.
prometheus_client.disable_created_metrics()

ROUTE_DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.048, 0.05,
    0.06, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
STATUS_CLASSES = ("2xx", "4xx", "5xx")
MIRRORED_VALUES = ("true", "false")

ROUTE_DURATION = Histogram(
    "msgroute_request_duration_seconds",
    "Time to answer POST /v1/route, injected latency included.",
    buckets=ROUTE_DURATION_BUCKETS,
)
ROUTE_REQUESTS = Counter(
    "msgroute_requests_total",
    "POST /v1/route answers by status class and whether the request was mirrored (shadow) traffic.",
    ["status_class", "mirrored"],
)
BUILD_INFO = Gauge(
    "msgroute_build_info", "Always 1; labels tell the running engine version and mode.", ["version", "mode"]
)

# Children resolved once: ``labels()`` locks and builds a key on every call; the hot path needs neither.
# Creating them also exports every series at 0, so a success-rate query has a denominator from the start.
_REQUEST_CHILDREN = {
    (status_class, mirrored == "true"): ROUTE_REQUESTS.labels(status_class=status_class, mirrored=mirrored)
    for status_class in STATUS_CLASSES
    for mirrored in MIRRORED_VALUES
}


def status_class(status: int) -> str:
    """Bucket an HTTP status; anything under 400 counts as success (the route never redirects)."""
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx"
    return "2xx"


def observe_route(status: int, mirrored: bool, duration_s: float) -> None:
    """Record one answered route request."""
    ROUTE_DURATION.observe(duration_s)
    _REQUEST_CHILDREN[(status_class(status), mirrored)].inc()


def set_build_info(version: str, mode: str) -> None:
    """Export exactly one build-info series for the running configuration."""
    BUILD_INFO.clear()
    BUILD_INFO.labels(version=version, mode=mode).set(1)


def render() -> tuple[bytes, str]:
    """Exposition text of the default registry and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# -- engine metrics (per message class, queue, destination) -------------------------------------------------

MESSAGE_OUTCOMES = ("queued", "decided", "shadow", "duplicate", "rejected", "unavailable", "fault")
DELIVERY_OUTCOMES = ("delivered", "expired", "failed", "refused", "abandoned")

MESSAGES = Counter(
    "msgroute_messages_total",
    "Route answers per message by message class and outcome (batch items count one each).",
    ["message_class", "outcome"],
)
MESSAGE_DURATION = Histogram(
    "msgroute_message_duration_seconds",
    "Time to answer POST /v1/route by message class (single-message requests only).",
    ["message_class"],
    buckets=ROUTE_DURATION_BUCKETS,
)
QUEUE_DEPTH = Gauge("msgroute_queue_depth", "Messages waiting for dispatch.", ["queue"])
QUEUE_CAPACITY = Gauge("msgroute_queue_capacity", "Queue bound; a full queue answers 429.", ["queue"])
QUEUE_EXPIRED = Counter(
    "msgroute_queue_expired_total", "Messages whose TTL ran out before dispatch.", ["queue"]
)
QUEUE_REJECTED = Counter(
    "msgroute_queue_rejected_total", "Messages refused with 429 (queue full).", ["queue"]
)
QUEUE_RELEASED = Counter(
    "msgroute_queue_released_total",
    "Durable queue: messages handed back to the pool at shutdown (another router delivers them).",
    ["queue"],
)
QUEUE_CLAIMED = Counter(
    "msgroute_queue_claimed_total",
    "Durable queue: messages claimed from a router that stopped reading (crashed or killed).",
    ["queue"],
)
QUEUE_ERRORS = Counter(
    "msgroute_queue_errors_total", "Durable queue: admissions answered 503 because Redis could not be asked."
)
TRACEPARENT_REPLACED = Counter(
    "msgroute_traceparent_replaced_total",
    "Requests whose traceparent header was malformed and replaced by a new trace.",
)
BREAKER_STATE = Gauge(
    "msgroute_breaker_state",
    "Circuit breaker per destination: 0 closed, 1 half-open, 2 open.",
    ["destination"],
)
BREAKER_TRANSITIONS = Counter(
    "msgroute_breaker_transitions_total", "Breaker state changes by new state.", ["destination", "state"]
)
DISPATCH_ATTEMPTS = Counter(
    "msgroute_dispatch_attempts_total",
    "Delivery attempts: ok (2xx), error (unreachable, timeout, 5xx, 429), refused (other 4xx).",
    ["destination", "result"],
)
DISPATCH_DURATION = Histogram(
    "msgroute_dispatch_duration_seconds",
    "Delivery attempt time.",
    ["destination"],
    buckets=ROUTE_DURATION_BUCKETS,
)
DELIVERIES = Counter(
    "msgroute_deliveries_total",
    "What finally happened to queued messages: delivered, expired (TTL), failed (attempts used up), refused "
    "(destination answered 4xx), abandoned (still queued when the drain deadline passed at shutdown).",
    ["message_class", "outcome"],
)
DESTINATION_IN_FLIGHT = Gauge("msgroute_destination_in_flight", "Deliveries in progress.", ["destination"])
DESTINATION_PENDING = Gauge("msgroute_destination_pending", "Queued messages assigned.", ["destination"])
DESTINATION_LATENCY = Gauge(
    "msgroute_destination_latency_ewma_seconds", "Predicted delivery latency (EWMA).", ["destination"]
)
IDEMPOTENCY_ENTRIES = Gauge("msgroute_idempotency_entries", "Ids held by the in-memory idempotency store.")
IDEMPOTENCY_ERRORS = Counter("msgroute_idempotency_errors_total", "Failed requests to the shared store.")
FEATURE_FLAG_PERCENT = Gauge("msgroute_feature_flag_percent", "Share of messages with a flag on.", ["flag"])
FAULT_INJECTION = Gauge("msgroute_fault_injection_enabled", "1 while fault injection is active.")

_message_children: dict[tuple[str, str], Any] = {}
_duration_children: dict[str, Any] = {}


def count_message(message_class: str, outcome: str) -> None:
    child = _message_children.get((message_class, outcome))
    if child is None:
        child = _message_children[(message_class, outcome)] = MESSAGES.labels(message_class, outcome)
    child.inc()


def observe_message(message_class: str, duration_s: float) -> None:
    child = _duration_children.get(message_class)
    if child is None:
        child = _duration_children[message_class] = MESSAGE_DURATION.labels(message_class)
    child.observe(duration_s)


def declare_classes(classes: Iterable[str]) -> None:
    """Export every (class, outcome) series at 0 so rate queries have data from the first scrape."""
    for message_class in classes:
        for outcome in MESSAGE_OUTCOMES:
            count_message_child = MESSAGES.labels(message_class, outcome)
            _message_children[(message_class, outcome)] = count_message_child
        for outcome in DELIVERY_OUTCOMES:
            DELIVERIES.labels(message_class, outcome)
        QUEUE_EXPIRED.labels(message_class)
        QUEUE_REJECTED.labels(message_class)
        QUEUE_RELEASED.labels(message_class)
        QUEUE_CLAIMED.labels(message_class)
