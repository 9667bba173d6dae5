"""The runtime API client: requests it builds, answers it parses, and when it changes nothing."""

from __future__ import annotations

import json
import subprocess

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils import traffic_runtime as rt


def answer(status: int, body: dict) -> str:
    text = json.dumps(body)
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(text)}\r\n\r\n{text}"
    )


class FakeNginx:
    """Plays nginx behind `docker exec`: records each raw request and answers like the Lua handler."""

    def __init__(self, new_weight: int = 0, shadow_percent: int = 0, has_new: bool = True) -> None:
        self.state = {"new_weight": new_weight, "shadow_percent": shadow_percent, "has_new": has_new}
        self.requests: list[str] = []
        self.commands: list[list[str]] = []

    def __call__(self, command, timeout):
        self.commands.append(list(command))
        request = command[-1]
        self.requests.append(request)
        line = request.split("\r\n", 1)[0]
        if line.startswith("PUT "):
            query = dict(pair.split("=") for pair in line.split("?", 1)[1].split(" ")[0].split("&"))
            values = {key: int(value) for key, value in query.items()}
            if not self.state["has_new"] and values["new_weight"] > 0:
                return subprocess.CompletedProcess(command, 0, answer(409, {"error": "no new pool"}), "")
            self.state.update(values)
        return subprocess.CompletedProcess(command, 0, answer(200, self.state), "")


def test_requests_are_http_1_0_with_a_length():
    assert rt.build_request("GET") == (
        "GET /_msgroute/runtime HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    put = rt.build_request("PUT", rt.Values(25, 10))
    assert put.startswith("PUT /_msgroute/runtime?new_weight=25&shadow_percent=10 HTTP/1.0\r\n")


def test_put_needs_values_and_only_get_put_or_delete():
    with pytest.raises(ValueError):
        rt.build_request("PUT")
    with pytest.raises(ValueError):
        rt.build_request("PATCH")


def test_delete_clears_the_guard_with_the_reason_encoded():
    request = rt.build_request("DELETE", reason="shadow run of 2.0.1 & more")
    assert request.startswith("DELETE /_msgroute/guard?reason=shadow+run+of+2.0.1+%26+more HTTP/1.0\r\n")
    assert "Content-Length: 0" in request
    assert rt.build_request("DELETE").startswith("DELETE /_msgroute/guard?reason=no+reason+given ")


def test_the_exec_command_reaches_the_container_loopback_with_bash():
    command = rt.exec_command("docker", "lb", 8081, "GET / HTTP/1.0\r\n\r\n")
    assert command[:5] == ["docker", "exec", "lb", "bash", "-c"]
    assert "/dev/tcp/127.0.0.1/$1" in command[5]
    assert command[-2:] == ["8081", "GET / HTTP/1.0\r\n\r\n"]


@pytest.mark.parametrize(
    ("new_weight", "shadow_percent"), [(-1, 0), (101, 0), (0, 200), (True, 0), ("5", 0), (5.5, 0)]
)
def test_values_are_whole_percentages(new_weight, shadow_percent):
    with pytest.raises(ValueError):
        rt.check_values(new_weight, shadow_percent)


def test_parse_response():
    status, data = rt.parse_response(answer(200, {"new_weight": 5}))
    assert (status, data) == (200, {"new_weight": 5})


@pytest.mark.parametrize(
    "raw", ["", "garbage", "HTTP/1.1 200 OK\r\n\r\nnot json", "HTTP/1.1 200 OK\r\n\r\n[1]"]
)
def test_parse_response_refuses_what_is_not_the_api(raw):
    with pytest.raises(rt.RuntimeApiError):
        rt.parse_response(raw)


def test_ensure_changes_nothing_when_nginx_already_serves_the_values():
    nginx = FakeNginx(25, 0)
    outcome = rt.ensure(rt.Client("lb", 8081, runner=nginx), rt.Values(25, 0))
    assert not outcome.changed
    assert [r.split(" ", 1)[0] for r in nginx.requests] == ["GET"]


def test_ensure_puts_and_reports_before_and_after():
    nginx = FakeNginx(25, 0)
    outcome = rt.ensure(rt.Client("lb", 8081, runner=nginx), rt.Values(50, 10))
    assert outcome.changed
    assert (outcome.before["new_weight"], outcome.after["new_weight"], outcome.after["shadow_percent"]) == (
        25,
        50,
        10,
    )
    assert nginx.state["new_weight"] == 50


def test_check_mode_only_reads():
    nginx = FakeNginx(25, 0)
    outcome = rt.ensure(rt.Client("lb", 8081, runner=nginx), rt.Values(50, 0), check_mode=True)
    assert outcome.changed and outcome.after["new_weight"] == 50
    assert nginx.state["new_weight"] == 25
    assert len(nginx.requests) == 1


def test_a_refusal_is_an_error_naming_the_container_and_nginx_reason():
    nginx = FakeNginx(0, 0, has_new=False)
    with pytest.raises(rt.RuntimeApiError, match="lb: runtime API refused PUT: 409 no new pool"):
        rt.ensure(rt.Client("lb", 8081, runner=nginx), rt.Values(50, 0))


def test_an_unreachable_container_is_an_error_with_docker_s_message():
    def paused(command, timeout):
        return subprocess.CompletedProcess(
            command, 1, "", "Error response from daemon: Container lb is paused"
        )

    with pytest.raises(rt.RuntimeApiError, match=r"cannot reach the runtime API .* is paused"):
        rt.Client("lb", 8081, runner=paused).get()


def test_a_hung_container_times_out():
    def hung(command, timeout):
        raise subprocess.TimeoutExpired(command, timeout)

    with pytest.raises(rt.RuntimeApiError, match="did not answer within 3 s"):
        rt.Client("lb", 8081, timeout=3, runner=hung).get()


def test_nginx_must_serve_what_was_asked():
    def stubborn(command, timeout):
        return subprocess.CompletedProcess(
            command, 0, answer(200, {"new_weight": 0, "shadow_percent": 0}), ""
        )

    with pytest.raises(rt.RuntimeApiError, match="asked for"):
        rt.Client("lb", 8081, runner=stubborn).put(rt.Values(10, 0))


RECORD = {
    "active": True,
    "version": "2.0.0",
    "alert": "MsgrouteLatencyAboveTrigger",
    "phase": "partial",
    "value": "81.2ms",
    "threshold": "65ms",
    "summary": "p95 above the trigger",
    "at": 1764660000.123,
    "weights_before": {"new_weight": 50, "shadow_percent": 10},
}


class GuardedNginx:
    """Plays nginx with a guard record: GET answers it, DELETE clears it and answers what it cleared."""

    def __init__(self, record: dict | None) -> None:
        self.state = {"new_weight": 0, "shadow_percent": 0, "version": "2.0.0", "guard": record,
                      "guard_in_force": record is not None}  # fmt: skip
        self.methods: list[str] = []
        self.keep_record = False

    def __call__(self, command, timeout):
        request = command[-1]
        self.methods.append(request.split(" ", 1)[0])
        if request.startswith("DELETE "):
            cleared = self.state["guard"]
            if not self.keep_record:
                self.state = {**self.state, "guard": None, "guard_in_force": False}
            return subprocess.CompletedProcess(
                command, 0, answer(200, {**self.state, "cleared": cleared}), ""
            )
        return subprocess.CompletedProcess(command, 0, answer(200, self.state), "")


def test_clearing_without_a_record_changes_nothing():
    nginx = GuardedNginx(None)
    outcome = rt.ensure_guard_cleared(rt.Client("lb", 8081, runner=nginx), "new shadow")
    assert not outcome.changed
    assert nginx.methods == ["GET"]


def test_clearing_a_record_deletes_it_and_reports_what_was_cleared():
    nginx = GuardedNginx(dict(RECORD))
    outcome = rt.ensure_guard_cleared(rt.Client("lb", 8081, runner=nginx), "new shadow")
    assert outcome.changed
    assert nginx.methods == ["GET", "DELETE"]
    assert rt.guard_of(outcome.before) == RECORD
    assert rt.guard_of(outcome.after) is None
    assert outcome.after["cleared"] == RECORD


def test_clearing_in_check_mode_only_reads():
    nginx = GuardedNginx(dict(RECORD))
    outcome = rt.ensure_guard_cleared(rt.Client("lb", 8081, runner=nginx), "new shadow", check_mode=True)
    assert outcome.changed and rt.guard_of(outcome.after) is None
    assert nginx.methods == ["GET"]
    assert nginx.state["guard"] == RECORD


def test_a_record_nginx_keeps_after_delete_is_an_error():
    nginx = GuardedNginx(dict(RECORD))
    nginx.keep_record = True
    with pytest.raises(rt.RuntimeApiError, match="still has"):
        rt.ensure_guard_cleared(rt.Client("lb", 8081, runner=nginx), "new shadow")


def test_guard_of_refuses_a_record_that_is_not_an_object():
    assert rt.guard_of({"guard": None}) is None
    assert rt.guard_of({}) is None
    with pytest.raises(rt.RuntimeApiError, match="not an object"):
        rt.guard_of({"guard": "yes"})


def test_the_guard_diff_names_the_alert_value_and_threshold():
    outcome = rt.Outcome(True, {"guard": RECORD}, {"guard": None})
    diff = rt.diff_of(outcome, "lb", guard=True)
    assert diff["before"] == (
        "guard: active, version 2.0.0 rolled back by MsgrouteLatencyAboveTrigger (81.2ms over 65ms) "
        "at 1764660000.123\n"
    )
    assert diff["after"] == "guard: none\n"
    assert rt.diff_of(rt.Outcome(False, {}, {}), "lb") == {}
