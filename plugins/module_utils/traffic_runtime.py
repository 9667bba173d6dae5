"""Read and change the traffic values nginx serves with, without a reload.

nginx (role ``traffic``) answers a small runtime API on a listener bound to the container's own loopback,
so no client and no other container can reach it. The host reaches it with ``docker exec``, using bash's
``/dev/tcp`` (bash is in every Debian-based image, the local one and OpenResty's alike, where curl is not).

``GET  /_msgroute/runtime``                                  -> the values in force (JSON), the version the
                                                               configuration serves and the guard's record
``PUT  /_msgroute/runtime?new_weight=N&shadow_percent=M``   -> set both at once, answers the values in force
                                                               (409 while the guard's record stands and N+M>0)
``DELETE /_msgroute/guard?reason=...``                       -> clear the guard's record; answers the state
                                                               and the record cleared (``cleared``)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

PATH = "/_msgroute/runtime"
GUARD_PATH = "/_msgroute/guard"
FIELDS = ("new_weight", "shadow_percent")
# $1 = port, $2 = the raw HTTP request. HTTP/1.0: nginx closes the connection after answering, so cat ends.
EXEC_SCRIPT = 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 3; printf "%s" "$2" >&3; cat <&3'

Runner = Callable[[Sequence[str], float], "subprocess.CompletedProcess[str]"]


class RuntimeApiError(RuntimeError):
    """The runtime API could not be reached or refused the request; the message says which."""


@dataclass(frozen=True)
class Values:
    new_weight: int
    shadow_percent: int

    def as_dict(self) -> dict[str, int]:
        return {"new_weight": self.new_weight, "shadow_percent": self.shadow_percent}


def check_values(new_weight: Any, shadow_percent: Any) -> Values:
    """Whole percentages 0-100, or ValueError naming the bad one."""
    checked = {}
    for name, value in (("new_weight", new_weight), ("shadow_percent", shadow_percent)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise ValueError(f"{name} must be a whole number from 0 to 100, got {value!r}")
        checked[name] = value
    return Values(**checked)


def build_request(method: str, values: Values | None = None, reason: str | None = None) -> str:
    if method not in ("GET", "PUT", "DELETE"):
        raise ValueError(f"method must be GET, PUT or DELETE, got {method!r}")
    target = PATH
    if method == "PUT":
        if values is None:
            raise ValueError("PUT needs the values to set")
        target = f"{PATH}?{urlencode(values.as_dict())}"
    elif method == "DELETE":
        target = f"{GUARD_PATH}?{urlencode({'reason': reason or 'no reason given'})}"
    # nginx wants a length on every PUT, even an empty one.
    return f"{method} {target} HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"


def exec_command(docker: str, container: str, port: int, request: str) -> list[str]:
    return [docker, "exec", container, "bash", "-c", EXEC_SCRIPT, "msgroute-runtime", str(port), request]


def parse_response(raw: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a raw HTTP/1.x answer."""
    head, sep, body = raw.replace("\r\n", "\n").partition("\n\n")
    status_line = head.split("\n", 1)[0]
    parts = status_line.split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise RuntimeApiError(f"not an HTTP answer from the runtime API: {raw[:200]!r}")
    try:
        data = json.loads(body) if body.strip() else {}
    except json.JSONDecodeError:
        raise RuntimeApiError(
            f"runtime API answered {parts[1]} with a body that is not JSON: {body[:200]!r}"
        ) from None
    if not isinstance(data, dict):
        raise RuntimeApiError(f"runtime API answered {parts[1]} with unexpected JSON: {body[:200]!r}")
    return int(parts[1]), data


def values_of(state: Mapping[str, Any]) -> Values:
    try:
        return check_values(state["new_weight"], state["shadow_percent"])
    except (KeyError, ValueError) as exc:
        raise RuntimeApiError(f"runtime API state without valid values: {dict(state)!r} ({exc})") from None


def _run(command: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False)


class Client:
    """The runtime API of one nginx container, through ``docker exec``."""

    def __init__(
        self, container: str, port: int, docker: str = "docker", timeout: float = 10, runner: Runner = _run
    ) -> None:
        self.container = container
        self.port = port
        self.docker = docker
        self.timeout = timeout
        self.runner = runner

    def _call(self, method: str, values: Values | None = None, reason: str | None = None) -> dict[str, Any]:
        command = exec_command(self.docker, self.container, self.port, build_request(method, values, reason))
        try:
            result = self.runner(command, self.timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeApiError(
                f"{self.container}: runtime API did not answer within {self.timeout} s"
            ) from None
        except FileNotFoundError:
            raise RuntimeApiError(f"docker command not found: {self.docker}") from None
        if result.returncode != 0 or not result.stdout:
            detail = (result.stderr or result.stdout or "").strip()
            raise RuntimeApiError(
                f"{self.container}: cannot reach the runtime API "
                f"(docker exec exited {result.returncode}): {detail}"
            )
        status, data = parse_response(result.stdout)
        if status != 200:
            raise RuntimeApiError(
                f"{self.container}: runtime API refused {method}: {status} {data.get('error', data)}"
            )
        return data

    def get(self) -> dict[str, Any]:
        return self._call("GET")

    def put(self, values: Values) -> dict[str, Any]:
        state = self._call("PUT", values)
        if values_of(state) != values:
            raise RuntimeApiError(f"{self.container}: asked for {values.as_dict()}, nginx serves {state}")
        return state

    def clear_guard(self, reason: str) -> dict[str, Any]:
        state = self._call("DELETE", reason=reason)
        if guard_of(state) is not None:
            raise RuntimeApiError(
                f"{self.container}: asked to clear the guard record, nginx still has {state}"
            )
        return state


def guard_of(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The guard's record in a runtime state (None when there is none)."""
    record = state.get("guard")
    if record is None:
        return None
    if not isinstance(record, dict):
        raise RuntimeApiError(f"runtime API state with a guard record that is not an object: {record!r}")
    return record


def guard_line(record: Mapping[str, Any] | None) -> str:
    """One line for a diff or a message: what the guard's record says."""
    if record is None:
        return "guard: none\n"
    state = "active" if record.get("active") else "inactive"
    return (
        f"guard: {state}, version {record.get('version')} rolled back by {record.get('alert')} "
        f"({record.get('value')} over {record.get('threshold')}) at {record.get('at')}\n"
    )


@dataclass(frozen=True)
class Outcome:
    changed: bool
    before: dict[str, Any]
    after: dict[str, Any]


def ensure_guard_cleared(client: Client, reason: str, check_mode: bool = False) -> Outcome:
    """No guard record on nginx; a no-op (not changed) when there is none."""
    before = client.get()
    if guard_of(before) is None:
        return Outcome(False, before, before)
    if check_mode:
        return Outcome(True, before, {**before, "guard": None, "guard_in_force": False})
    return Outcome(True, before, client.clear_guard(reason))


def ensure(client: Client, desired: Values, check_mode: bool = False) -> Outcome:
    """Make nginx serve ``desired``; a no-op (not changed) when it already does."""
    before = client.get()
    if values_of(before) == desired:
        return Outcome(False, before, before)
    if check_mode:
        return Outcome(True, before, {**before, **desired.as_dict()})
    return Outcome(True, before, client.put(desired))


def diff_of(outcome: Outcome, container: str, guard: bool = False) -> dict[str, str]:
    """Ansible's diff of a change: the values, or (``guard``) the guard's record; empty without a change."""
    if not outcome.changed:
        return {}
    if guard:
        before = guard_line(guard_of(outcome.before))
        after = guard_line(guard_of(outcome.after))
    else:
        before = "".join(f"{f}: {outcome.before.get(f)}\n" for f in FIELDS)
        after = "".join(f"{f}: {outcome.after.get(f)}\n" for f in FIELDS)
    return {
        "before": before,
        "after": after,
        "before_header": f"{container} runtime",
        "after_header": f"{container} runtime",
    }
