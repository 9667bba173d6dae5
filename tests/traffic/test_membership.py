"""Every membership change of a rollout is a run-time change: no reload, no request lost (issue 11).

One journey under load from kept-alive clients that never retry (16 connections on each lb host, 32 in all),
every step by the traffic role on both lb hosts, as the playbooks call it:

1. before shadow the new pool has no member; shadow's first step adds both new routers (mirror 10 %);
2. live at 50 %; the new pool scales 2 -> 3 -> 1 -> 2 (a third router started for it, then removed);
3. full: legacy retired (its members drained by the switch), then its containers stopped;
4. a rollback from full: legacy's containers started again (new addresses), legacy back at 100 %.

Then a cold restart of each nginx at each phase serves exactly the weights and members it served before, and
retiring legacy while it still answers a (slow) request waits for that request before the switch returns.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from ansible_collections.msgroute.rollout.plugins.module_utils import traffic_runtime as rt
from ansible_collections.msgroute.rollout.plugins.module_utils.traffic_runtime import Client, Values

from tests.support.traffic_world import LB1, LBS, LEGACY, NEW, applied, backends, docker

THIRD = NEW[0].removesuffix("-1") + "-3"


def names(state: dict, pool: str) -> list[str]:
    return sorted(m["name"] for m in state["members"][pool])


def peers(state: dict, pool: str) -> set[str]:
    return {m["peer"] for m in state["members"][pool]}


def share_of_new(lb, seconds: float) -> tuple[float, float]:
    """Requests the lb answered over ``seconds`` of the running load, and the new pool's share (%)."""
    before = lb.metrics().by_label("msgroute_lb_requests_total", "pool")
    time.sleep(seconds)
    after = lb.metrics().by_label("msgroute_lb_requests_total", "pool")
    delta = {pool: after.get(pool, 0) - before.get(pool, 0) for pool in ("new", "legacy")}
    total = delta["new"] + delta["legacy"]
    return total, 100 * delta["new"] / total if total else 0.0


def everywhere(step: str, seen: dict, **variables) -> None:
    """One role run on both lb hosts, and what each nginx serves right after it."""
    applied(**variables)
    seen[step] = {lb.host: lb.runtime() for lb in LBS}


@pytest.fixture(scope="module")
def journey(world):
    seen: dict[str, dict] = {}
    applied(weight=0, shadow=0, traffic_new_hosts=[])
    seen["before shadow"] = {lb.host: lb.runtime() for lb in LBS}
    loaded_before = {lb.host: lb.runtime()["loaded_at"] for lb in LBS}
    loads = [lb.load(16, rate=150).start() for lb in LBS]
    stopped_legacy = False
    try:
        time.sleep(1)
        everywhere("shadow", seen, weight=0, shadow=10)
        everywhere("live 50", seen, weight=50, shadow=0)
        backends("--limit", "routers", "-e", '{"router_instances": 3}')
        everywhere("scaled to 3", seen, weight=50, shadow=0, router_instances=3)
        seen["share with 3"] = share_of_new(LB1, 4)
        everywhere("scaled to 1", seen, weight=50, shadow=0, router_instances=1)
        everywhere("scaled to 2", seen, weight=50, shadow=0)
        docker("rm", "-f", THIRD)
        everywhere("full", seen, weight=100, shadow=0, legacy=False)
        # The switch returned once legacy's last request ended: stopping it now cuts nobody off.
        docker("stop", "-t", "20", *LEGACY)
        stopped_legacy = True
        time.sleep(2)
        backends("--limit", "legacy")
        stopped_legacy = False
        everywhere("rollback from full", seen, weight=0, shadow=0, legacy=True)
        time.sleep(1)
    finally:
        tallies = [running.stop() for running in loads]
        if stopped_legacy:
            backends("--limit", "legacy")
        docker("rm", "-f", THIRD, check=False)
    return seen, tallies, loaded_before


def test_no_client_lost_a_request(journey):
    tallies = journey[1]
    for tally in tallies:
        assert tally.requests > 2000, tally.snapshot()
        assert tally.failed == 0, tally.snapshot()


def test_nginx_was_never_reloaded_or_restarted(journey):
    seen, loaded_before = journey[0], journey[2]
    for lb in LBS:
        loaded = {states[lb.host]["loaded_at"] for states in _states(seen)}
        assert loaded == {loaded_before[lb.host]}, lb.host


def _states(seen: dict) -> list[dict]:
    return [states for step, states in seen.items() if step != "share with 3"]


def test_each_step_served_its_members(journey):
    seen = journey[0]
    legacy, new = sorted(LEGACY), sorted(NEW)
    expected = {
        "before shadow": (legacy, [], 0, 0),
        "shadow": (legacy, new, 0, 10),
        "live 50": (legacy, new, 50, 0),
        "scaled to 3": (legacy, sorted([*NEW, THIRD]), 50, 0),
        "scaled to 1": (legacy, [NEW[0]], 50, 0),
        "scaled to 2": (legacy, new, 50, 0),
        "full": ([], new, 100, 0),
        "rollback from full": (legacy, new, 0, 0),
    }
    for step, (want_legacy, want_new, weight, shadow) in expected.items():
        for host, state in seen[step].items():
            got = (names(state, "legacy"), names(state, "new"), state["new_weight"], state["shadow_percent"])
            assert got == (want_legacy, want_new, weight, shadow), (step, host, state)


def test_members_taken_out_had_finished_their_requests(journey):
    seen = journey[0]
    for step, gone in (("scaled to 1", ("scaled to 3", "new")), ("full", ("scaled to 2", "legacy"))):
        for host, state in seen[step].items():
            removed = peers(seen[gone[0]][host], gone[1]) - peers(state, gone[1])
            assert removed, (step, host)
            assert not removed & set(state["in_flight"]), (step, host, state["in_flight"])


def test_the_split_stays_exact_after_scaling(journey):
    seen = journey[0]
    total, share = seen["share with 3"]
    assert total > 400, total
    assert abs(share - 50) <= 1, share


def test_legacy_answers_again_after_the_rollback_from_full(journey):
    tally = LB1.send(200, concurrency=4)
    assert tally.failed == 0, tally.snapshot()
    assert tally.by_pool == {"legacy": 200}, tally.snapshot()


@pytest.mark.parametrize(
    "variables",
    [
        {"weight": 0, "shadow": 10},
        {"weight": 50, "shadow": 10, "router_instances": 1},
        {"weight": 100, "shadow": 0, "legacy": False},
    ],
    ids=["shadow", "partial 50 with one new router", "full with legacy retired"],
)
def test_a_cold_restart_serves_the_same_split_and_members(journey, variables):
    applied(**variables)
    try:
        for lb in LBS:
            before = lb.runtime()
            docker("restart", "-t", "15", lb.container)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if lb.health() == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            after = lb.runtime()
            assert after["loaded_at"] > before["loaded_at"], lb.host
            for key in ("new_weight", "shadow_percent", "members"):
                assert _without_marks(after[key]) == _without_marks(before[key]), (lb.host, key)
        tally = LB1.send(1000, concurrency=8)
        assert tally.failed == 0, tally.snapshot()
        want_new = 10 * variables["weight"]
        split = (tally.by_pool["new"], tally.by_pool["legacy"])
        assert split == (want_new, 1000 - want_new), tally.snapshot()
    finally:
        applied(weight=0, shadow=0)


def _without_marks(value):
    """Members without the passive `down` mark (a restart forgets it, as nginx's own upstreams did)."""
    if isinstance(value, dict):
        return {pool: [_unmarked(m) for m in members] for pool, members in value.items()}
    return value


def _unmarked(member: dict) -> dict:
    return {key: value for key, value in member.items() if key != "down"}


@pytest.fixture
def slow_legacy(journey):
    """Legacy answering in 3 s (fault injection), nginx pointed at its recreated containers; then undone."""
    backends("--limit", "legacy", "-e", '{"router_fault_injection": {"latency_ms": 3000}}')
    applied(weight=0, shadow=0)
    yield
    backends("--limit", "legacy")
    applied(weight=0, shadow=0)


def test_retiring_legacy_waits_for_its_last_request(slow_legacy):
    # The switch of the role (module traffic_runtime's ensure) against the real nginx, with a request still
    # on a legacy member: it returns only once that request has been answered.
    client = Client(LB1.container, 8081)
    state = client.get()
    new = [{k: m[k] for k in ("name", "address")} for m in state["members"]["new"]]
    answered = {}

    def slow_request() -> None:
        response = requests.post(
            f"{LB1.url}/v1/route",
            json={"id": "drain-1", "source": "traffic-suite", "type": "telemetry"},
            headers={"X-Canary": "never"},
            timeout=20,
        )
        answered.update(status=response.status_code, pool=response.headers.get("X-Msgroute-Pool"),
                        at=time.monotonic())  # fmt: skip

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.5)
    busy = client.get()["in_flight"]
    outcome = rt.ensure(client, Values(100, 0), members={"legacy": [], "new": new})
    returned = time.monotonic()
    thread.join(20)
    assert set(busy) & set(outcome.drained), (busy, outcome.drained)
    assert max(outcome.drained.values()) >= 1.5, outcome.drained
    assert answered["status"] == 200 and answered["pool"] == "legacy", answered
    assert answered["at"] <= returned, (answered, returned)
    assert not client.get()["in_flight"]
