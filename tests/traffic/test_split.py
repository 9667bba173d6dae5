"""The split is exact: at 25, 50 and 75 % the new pool's share of >= 5,000 requests is within 2 points.

The weight is set at run time (the role's switch step, no reload); kept-alive clients send as fast as nginx
answers. The response header names the pool that answered, and it agrees with the router that answered.
"""

from __future__ import annotations

import time

import pytest

from tests.support.metrics import Metrics
from tests.support.traffic_world import LB1

REQUESTS = 5000


@pytest.fixture(scope="module", params=[25, 50, 75])
def split(request, world):
    LB1.set_runtime(request.param)
    before = LB1.metrics()
    tally = LB1.send(REQUESTS, concurrency=12)
    return request.param, tally, before, settled_metrics(before, REQUESTS)


def settled_metrics(before: Metrics, requests: int) -> Metrics:
    """nginx counts a request in its log phase, just after the answer left: wait for the last ones."""
    key = "msgroute_lb_request_duration_seconds_count"
    deadline = time.monotonic() + 5
    while True:
        after = LB1.metrics()
        counted = after.value(key) - before.value(key)
        if counted >= requests or time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def test_every_request_answered(split):
    _, tally, _, _ = split
    assert tally.requests == REQUESTS
    assert tally.failed == 0, tally.snapshot()


def test_new_share_within_two_points(split):
    weight, tally, _, _ = split
    assert abs(tally.share("new") - weight) <= 2.0, tally.snapshot()


def test_header_names_the_pool_that_answered(split):
    _, tally, _, _ = split
    assert set(tally.by_pool) == {"new", "legacy"}
    assert tally.by_version == {"2.0.0": tally.by_pool["new"], "legacy": tally.by_pool["legacy"]}


def test_lb_metrics_count_the_same(split):
    _, tally, before, after = split
    for pool in ("new", "legacy"):
        answered = {"pool": pool, "status_class": "2xx"}
        key = "msgroute_lb_requests_total"
        assert after.value(key, **answered) - before.value(key, **answered) == tally.by_pool[pool]
        count = "msgroute_lb_request_duration_seconds_count"
        assert after.value(count, pool=pool) - before.value(count, pool=pool) == tally.by_pool[pool]
