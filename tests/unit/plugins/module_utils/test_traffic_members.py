"""Pool membership through the runtime API: members checked, names resolved in the lb, drained."""

from __future__ import annotations

import json
import subprocess

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils import traffic_runtime as rt

LEGACY = [{"name": "legacy-1", "address": "10.0.0.3:8080"}, {"name": "legacy-2", "address": "10.0.0.4:8080"}]
NEW = [{"name": "router-1", "address": "10.0.0.5:8080"}]


def answer(status: int, body: dict) -> str:
    text = json.dumps(body)
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(text)}\r\n\r\n{text}"


class FakeNginx:
    """Plays the Lua runtime API behind `docker exec` (weights, members, requests in flight) and getent."""

    def __init__(self, members: dict, in_flight: list[dict] | None = None, hosts: dict | None = None) -> None:
        self.state = {"new_weight": 0, "shadow_percent": 0, "members": rt.with_peers(members, {})}
        # Successive answers for in_flight after the PUT (the last one repeats).
        self.flights = in_flight or [{}]
        self.hosts = hosts or {}
        self.puts: list[dict] = []
        self.gets_after_put = 0

    def __call__(self, command, timeout):
        if command[3] == "getent":
            ip = self.hosts.get(command[-1])
            out = f"{ip}      STREAM {command[-1]}\n{ip}      DGRAM  \n" if ip else ""
            return subprocess.CompletedProcess(command, 0 if ip else 2, out, "")
        request = command[-1]
        line, body = request.split("\r\n\r\n", 1)
        if line.startswith("PUT "):
            query = dict(pair.split("=") for pair in line.split("?", 1)[1].split(" ")[0].split("&"))
            self.state.update({key: int(value) for key, value in query.items()})
            if body:
                self.state["members"] = json.loads(body)["members"]
            self.puts.append(json.loads(body) if body else {})
        elif self.puts:
            self.gets_after_put += 1
        flights = self.flights[min(self.gets_after_put, len(self.flights) - 1)] if self.puts else {}
        return subprocess.CompletedProcess(command, 0, answer(200, {**self.state, "in_flight": flights}), "")


def client(nginx: FakeNginx) -> rt.Client:
    return rt.Client("lb", 8081, runner=nginx)


def test_a_put_with_members_carries_them_as_json_with_their_length():
    members = rt.with_peers({"legacy": LEGACY, "new": []}, {})
    request = rt.build_request("PUT", rt.Values(0, 0), members=members)
    head, body = request.split("\r\n\r\n", 1)
    assert json.loads(body) == {"members": members}
    assert f"Content-Length: {len(body.encode())}" in head


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"canary": []}, "pools"),
        ({"legacy": "10.0.0.3:8080"}, "must be a list"),
        ({"legacy": [{"name": "a"}]}, "name and an address"),
        ({"legacy": [{"name": "a", "address": "10.0.0.3"}]}, "host:port"),
        ({"legacy": [{"name": "a", "address": "10.0.0.3:70000"}]}, "host:port"),
        ({"legacy": [{"name": "a", "address": "h:1", "peer": "h:1"}]}, "IPv4"),
    ],
)
def test_members_are_checked(members, message):
    with pytest.raises(ValueError, match=message):
        rt.check_members(members)


def test_only_names_without_a_peer_are_resolved_each_once():
    members = rt.check_members(
        {
            "legacy": [
                {"name": "l1", "address": "legacy.example:9001"},
                {"name": "l2", "address": "10.0.0.4:1"},
            ],
            "new": [
                {"name": "r1", "address": "legacy.example:9002"},
                {"name": "r2", "address": "router.example:9001", "peer": "10.0.0.9:9001"},
                {"name": "r3", "address": "other.example:9001"},
            ],
        }
    )
    assert rt.unresolved_hosts(members) == ["legacy.example", "other.example"]


def test_getent_output_gives_the_first_ipv4_address_per_name():
    output = (
        "10.1.0.7      STREAM router1.example\n10.1.0.7      DGRAM  \n10.1.0.8      STREAM router1.example\n"
    )
    assert rt.parse_getent(output) == {"router1.example": "10.1.0.7"}
    assert rt.parse_getent("") == {}


def test_peers_come_from_the_address_its_resolution_or_as_given():
    members = rt.check_members(
        {
            "legacy": [{"name": "l1", "address": "legacy.example:9001"}],
            "new": [{"name": "r1", "address": "10.0.0.5:8080"}],
        }
    )
    peers = rt.with_peers(members, {"legacy.example": "10.2.0.1"})
    assert peers["legacy"][0]["peer"] == "10.2.0.1:9001"
    assert peers["new"][0]["peer"] == "10.0.0.5:8080"
    with pytest.raises(rt.RuntimeApiError, match=r"cannot resolve legacy\.example"):
        rt.with_peers(members, {})


def test_names_are_resolved_inside_the_lb_container():
    nginx = FakeNginx({"legacy": LEGACY, "new": []}, hosts={"router1.example": "10.3.0.1"})
    assert client(nginx).resolve(["router1.example"]) == {"router1.example": "10.3.0.1"}
    with pytest.raises(rt.RuntimeApiError, match=r"cannot resolve nowhere\.example"):
        client(nginx).resolve(["nowhere.example"])


def test_the_same_members_in_another_order_change_nothing():
    nginx = FakeNginx({"legacy": LEGACY, "new": NEW})
    outcome = rt.ensure(client(nginx), rt.Values(0, 0), members={"legacy": LEGACY[::-1], "new": NEW})
    assert not outcome.changed and nginx.puts == []


def test_a_new_pool_appearing_is_one_put_with_weights_and_members():
    nginx = FakeNginx({"legacy": LEGACY, "new": []})
    outcome = rt.ensure(client(nginx), rt.Values(0, 10), members={"legacy": LEGACY, "new": NEW})
    assert outcome.changed and outcome.drained == {}
    assert len(nginx.puts) == 1
    assert [m["name"] for m in nginx.puts[0]["members"]["new"]] == ["router-1"]


def test_members_taken_out_are_drained_before_ensure_returns():
    busy = [{"10.0.0.3:8080": 2, "10.0.0.4:8080": 1}, {"10.0.0.3:8080": 1}, {}]
    nginx = FakeNginx({"legacy": LEGACY, "new": NEW}, in_flight=busy)
    outcome = rt.ensure(client(nginx), rt.Values(100, 0), members={"legacy": [], "new": NEW})
    assert set(outcome.drained) == {"10.0.0.3:8080", "10.0.0.4:8080"}
    # The PUT's own answer, then two reads until the last request ended.
    assert nginx.gets_after_put == 2


def test_a_member_that_never_drains_fails_the_change_naming_it():
    nginx = FakeNginx({"legacy": LEGACY, "new": NEW}, in_flight=[{"10.0.0.3:8080": 1}])
    nginx.puts.append({})  # legacy-1 was taken out: it keeps one request in flight
    ticks = iter(range(100))
    with pytest.raises(rt.RuntimeApiError, match=r"still in flight after 5 s .*10\.0\.0\.3:8080"):
        rt.wait_drained(client(nginx), {"10.0.0.3:8080"}, 5, clock=lambda: next(ticks), sleep=lambda s: None)


def test_check_mode_shows_the_members_and_puts_nothing():
    nginx = FakeNginx({"legacy": LEGACY, "new": NEW})
    outcome = rt.ensure(client(nginx), rt.Values(100, 0), check_mode=True, members={"legacy": [], "new": NEW})
    assert outcome.changed and nginx.puts == []
    diff = rt.diff_of(outcome, "lb")
    assert "  - legacy-1 10.0.0.3:8080\n" in diff["before"]
    assert "legacy members:\nnew members:\n  - router-1 10.0.0.5:8080\n" in diff["after"]


def test_nginx_serving_other_members_than_asked_is_an_error():
    served = {
        "new_weight": 0,
        "shadow_percent": 0,
        "members": rt.with_peers({"legacy": LEGACY, "new": NEW}, {}),
    }

    def stubborn(command, timeout):
        return subprocess.CompletedProcess(command, 0, answer(200, served), "")

    wanted = rt.with_peers({"legacy": LEGACY, "new": []}, {})
    with pytest.raises(rt.RuntimeApiError, match="asked for"):
        rt.Client("lb", 8081, runner=stubborn).put(rt.Values(0, 0), wanted)
