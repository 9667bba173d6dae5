"""Weight changes and the rollback never drop a request of a kept-alive client that does not retry.

Load runs on both lb hosts from kept-alive clients that never retry (a reload would lose some of their
requests: bench/traffic measures how many). Meanwhile the weight changes 20 times on both lb hosts at once
through the runtime API, with the client code of the role's switch step (module traffic_runtime), one every
quarter of a second; then the role itself rolls back to legacy (nginx.conf rewritten, runtime values
switched). No client sees an error and nginx is never reloaded or restarted.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.traffic_world import LBS, applied

WEIGHTS = [5 * step for step in range(1, 21)]  # 5 .. 100


def switch_all(weight: int, changes: dict[str, list[int]]) -> None:
    """One weight on every lb at once (a thread each, as Ansible runs a task on every host)."""

    def switch(lb) -> None:
        changes[lb.host].append(lb.set_runtime(weight)["new_weight"])

    threads = [threading.Thread(target=switch, args=(lb,)) for lb in LBS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture(scope="module")
def switching(world):
    # Start from a rendered weight, so the role's rollback rewrites nginx.conf as well as the runtime values.
    applied(weight=25, shadow=0)
    loaded_before = {lb.host: lb.runtime()["loaded_at"] for lb in LBS}
    loads = [lb.load(16, rate=150).start() for lb in LBS]
    try:
        time.sleep(1)
        changes = {lb.host: [] for lb in LBS}
        for weight in WEIGHTS:
            switch_all(weight, changes)
            time.sleep(0.25)
        rollback = applied(weight=0, shadow=0)
        time.sleep(1)
    finally:
        tallies = [running.stop() for running in loads]
    return tallies, changes, rollback, loaded_before


def test_no_client_saw_an_error(switching):
    tallies, _, _, _ = switching
    for tally in tallies:
        assert tally.requests > 500, tally.snapshot()
        assert tally.failed == 0, tally.snapshot()


def test_both_pools_served_during_the_changes(switching):
    tallies, _, _, _ = switching
    for tally in tallies:
        assert tally.by_pool["new"] > 0 and tally.by_pool["legacy"] > 0, tally.snapshot()


def test_every_change_was_applied_on_both_lb_hosts(switching):
    _, changes, _, _ = switching
    assert changes == {lb.host: WEIGHTS for lb in LBS}


def test_the_rollback_is_in_force_and_recorded(switching):
    for lb in LBS:
        assert lb.runtime()["new_weight"] == 0
        assert lb.recorded() == {"new_weight": 0, "shadow_percent": 0, "legacy_enabled": True}


def test_nginx_was_never_reloaded(switching):
    _, _, _, loaded_before = switching
    for lb in LBS:
        assert lb.runtime()["loaded_at"] == loaded_before[lb.host]
