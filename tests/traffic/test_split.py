"""The split is exact: at 25, 50 and 75 % the new pool's share of >= 5,000 requests is within 2 points.

The weight is set at run time (the role's switch step, no reload); kept-alive clients send as fast as nginx
answers. The response header names the pool that answered, and it agrees with the router that answered.
"""

from __future__ import annotations

import time

import pytest
import traffic_load as load
from traffic_world import LB1

REQUESTS = 5000


@pytest.fixture(scope="module", params=[25, 50, 75])
def split(request, world):
    LB1.set_runtime(request.param)
    before = LB1.metrics()
    tally = load.run(LB1.port, REQUESTS, connections=12)
    return request.param, tally, before, settled_metrics(before, REQUESTS)


def settled_metrics(before: dict[str, float], requests: int) -> dict[str, float]:
    """nginx counts a request in its log phase, just after the answer left: wait for the last ones."""
    key = "msgroute_lb_request_duration_seconds_count"
    deadline = time.monotonic() + 5
    while True:
        after = LB1.metrics()
        counted = sum(after[k] - before[k] for k in after if k.startswith(key))
        if counted >= requests or time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def test_every_request_answered(split):
    _, tally, _, _ = split
    assert tally.requests == REQUESTS
    assert tally.failed == 0, tally.summary()


def test_new_share_within_two_points(split):
    weight, tally, _, _ = split
    assert abs(tally.share("new") - weight) <= 2.0, tally.summary()


def test_header_names_the_pool_that_answered(split):
    _, tally, _, _ = split
    assert set(tally.by_pool) == {"new", "legacy"}
    assert tally.by_version == {"2.0.0": tally.by_pool["new"], "legacy": tally.by_pool["legacy"]}


def test_lb_metrics_count_the_same(split):
    _, tally, before, after = split
    for pool in ("new", "legacy"):
        key = f'msgroute_lb_requests_total{{pool="{pool}",status_class="2xx"}}'
        assert after[key] - before[key] == tally.by_pool[pool]
        count = f'msgroute_lb_request_duration_seconds_count{{pool="{pool}"}}'
        assert after[count] - before[count] == tally.by_pool[pool]
