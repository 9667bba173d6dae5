"""Prometheus metrics that the rollout gates read.

Names, labels and buckets are a contract with the gate queries and alert rules: change them together. The
buckets include the SLA thresholds (45, 48, 50 ms) so ``histogram_quantile`` at a threshold is exact rather
than interpolated. Series live in the default registry, next to the process collector that gives
``process_resident_memory_bytes`` for the memory gate.
"""

from __future__ import annotations

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
