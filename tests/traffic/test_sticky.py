"""Sticky split by cookie, and the X-Canary override.

With ``traffic_split_by: cookie`` a user (cookie value) lands in one of 100 buckets and stays on its pool;
raising the weight only moves users from legacy to new. Requests without the cookie are split per request.
``X-Canary: always|never`` forces the pool, except that ``always`` is ignored once the weight is 0 (a
rollback sends everyone back to legacy).
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import requests

from router_app.loadgen import Tally
from tests.support.traffic_world import LB1, applied

USERS = 1000


def pools_by_user(tally: Tally) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for cookie, pool in tally.cookie_pools:
        seen[cookie].add(pool)
    return seen


def route(headers: dict[str, str]) -> str:
    answer = requests.post(
        f"http://127.0.0.1:{LB1.port}/v1/route",
        json={"id": "sticky", "source": "traffic-suite", "type": "telemetry"},
        headers=headers,
        timeout=5,
    )
    assert answer.status_code == 200
    return answer.headers["X-Msgroute-Pool"]


@pytest.fixture(scope="module")
def sticky(world):
    applied(weight=30, shadow=0, traffic_split_by="cookie", traffic_split_key="msgroute_user")

    def cookie(n):
        return f"msgroute_user=user-{n % USERS}"

    at_30 = LB1.send(USERS * 3, concurrency=8, cookie=cookie)
    LB1.set_runtime(60)
    at_60 = LB1.send(USERS * 3, concurrency=8, cookie=cookie)
    return at_30, at_60


def test_a_user_stays_on_one_pool(sticky):
    for tally in sticky:
        assert tally.failed == 0, tally.snapshot()
        assert all(len(pools) == 1 for pools in pools_by_user(tally).values())


def test_the_share_of_users_follows_the_weight(sticky):
    for tally, weight in zip(sticky, (30, 60), strict=True):
        users = pools_by_user(tally)
        on_new = sum(1 for pools in users.values() if pools == {"new"})
        # 1,000 users hashed into 100 buckets: binomial spread, not the per-request exactness.
        assert abs(100 * on_new / len(users) - weight) <= 6, on_new


def test_raising_the_weight_only_moves_users_to_new(sticky):
    at_30, at_60 = (pools_by_user(tally) for tally in sticky)
    assert all(at_60[user] == {"new"} for user, pools in at_30.items() if pools == {"new"})


def test_requests_without_the_cookie_are_split_per_request(sticky):
    tally = LB1.send(1000, concurrency=8)
    assert abs(tally.share("new") - 60) <= 2, tally.snapshot()


def test_the_canary_header_forces_the_pool(sticky):
    LB1.set_runtime(40)
    assert {route({"X-Canary": "always"}) for _ in range(20)} == {"new"}
    assert {route({"X-Canary": "never", "Cookie": f"msgroute_user=user-{n}"}) for n in range(40)} == {
        "legacy"
    }
    LB1.set_runtime(0)
    assert {route({"X-Canary": "always"}) for _ in range(20)} == {"legacy"}
