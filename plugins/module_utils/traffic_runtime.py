"""Read and change the traffic values nginx serves with, without a reload.

nginx (role ``traffic``) answers a small runtime API on a listener bound to the container's own loopback,
so no client and no other container can reach it. The host reaches it with ``docker exec``, using bash's
``/dev/tcp`` (bash is in every Debian-based image, the local one and OpenResty's alike, where curl is not).

``GET  /_msgroute/runtime``                                  -> the values in force (JSON), the version the
                                                               configuration serves and the guard's record
``PUT  /_msgroute/runtime?new_weight=N&shadow_percent=M``   -> set both at once, answers the values in force
                                                               (409 while the guard's record stands, N+M>0);
                                                               a JSON body ``{"members": {"legacy": [...],
                                                               "new": [...]}}`` changes the pools' members in
                                                               the same change (``{name, address, peer}``)
``DELETE /_msgroute/guard?reason=...``                       -> clear the guard's record; answers the state
                                                               and the record cleared (``cleared``)
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

PATH = "/_msgroute/runtime"
POOLS = ("legacy", "new")
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


Members = dict[str, list[dict[str, str]]]


def host_of(address: str) -> str:
    """The host part of ``host:port``."""
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"a member address must be host:port, got {address!r}")
    return host


def is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def check_members(members: Mapping[str, Any]) -> Members:
    """``{legacy: [{name, address[, peer]}], new: [...]}`` checked (ValueError naming the bad entry)."""
    if not isinstance(members, Mapping) or set(members) - set(POOLS):
        raise ValueError(f"members must be a mapping with the pools {list(POOLS)}, got {members!r}")
    out: Members = {}
    for pool in POOLS:
        entries = members.get(pool) or []
        if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
            raise ValueError(f"members.{pool} must be a list, got {entries!r}")
        out[pool] = []
        for entry in entries:
            if not isinstance(entry, Mapping) or not entry.get("name") or not entry.get("address"):
                raise ValueError(f"members.{pool}: each member needs a name and an address, got {entry!r}")
            member = {"name": str(entry["name"]), "address": str(entry["address"])}
            host_of(member["address"])
            if entry.get("peer"):
                if not is_ipv4(host_of(str(entry["peer"]))):
                    raise ValueError(
                        f"members.{pool}: peer must be an IPv4 address and port, got {entry['peer']!r}"
                    )
                member["peer"] = str(entry["peer"])
            out[pool].append(member)
    return out


def unresolved_hosts(members: Members) -> list[str]:
    """Host names (not IPv4 addresses) of members without a peer, each once, in order."""
    hosts: list[str] = []
    for pool in POOLS:
        for member in members[pool]:
            host = host_of(member["address"])
            if "peer" not in member and not is_ipv4(host) and host not in hosts:
                hosts.append(host)
    return hosts


def parse_getent(output: str) -> dict[str, str]:
    """``getent ahostsv4 a b`` output -> host name -> its first IPv4 address (lines ``ip STREAM name``).

    getent prints the canonical name on the first line of each host only, so a host maps to the address of
    the first line naming it; the caller asks one host per call to stay unambiguous.
    """
    resolved: dict[str, str] = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 3 and is_ipv4(fields[0]) and fields[2] not in resolved:
            resolved[fields[2]] = fields[0]
    return resolved


def with_peers(members: Members, resolved: Mapping[str, str]) -> Members:
    """Every member with its ``peer`` (ip:port): given, its own IPv4 address, or its host resolved."""
    out: Members = {}
    for pool in POOLS:
        out[pool] = []
        for member in members[pool]:
            host = host_of(member["address"])
            port = member["address"].rpartition(":")[2]
            peer = member.get("peer")
            if not peer:
                ip = host if is_ipv4(host) else resolved.get(host)
                if not ip:
                    raise RuntimeApiError(
                        f"cannot resolve {host} (member {member['name']} of the {pool} pool)"
                    )
                peer = f"{ip}:{port}"
            out[pool].append({"name": member["name"], "address": member["address"], "peer": peer})
    return out


def members_of(state: Mapping[str, Any]) -> Members:
    """The members a runtime state names (``{name, address, peer}`` per pool; none for an older nginx)."""
    members = state.get("members") or {}
    return {
        pool: [
            {"name": str(m.get("name")), "address": str(m.get("address")), "peer": str(m.get("peer"))}
            for m in members.get(pool) or []
        ]
        for pool in POOLS
    }


def peers_of(members: Members) -> set[str]:
    return {m["peer"] for pool in POOLS for m in members[pool]}


def same_members(a: Members, b: Members) -> bool:
    def key(members: Members) -> dict[str, list[tuple[str, str, str]]]:
        return {pool: sorted((m["name"], m["address"], m["peer"]) for m in members[pool]) for pool in POOLS}

    return key(a) == key(b)


def build_request(
    method: str, values: Values | None = None, reason: str | None = None, members: Members | None = None
) -> str:
    if method not in ("GET", "PUT", "DELETE"):
        raise ValueError(f"method must be GET, PUT or DELETE, got {method!r}")
    target = PATH
    body = ""
    if method == "PUT":
        if values is None:
            raise ValueError("PUT needs the values to set")
        target = f"{PATH}?{urlencode(values.as_dict())}"
        if members is not None:
            body = json.dumps({"members": members}, separators=(",", ":"))
    elif method == "DELETE":
        target = f"{GUARD_PATH}?{urlencode({'reason': reason or 'no reason given'})}"
    # nginx wants a length on every PUT, even an empty one.
    return (
        f"{method} {target} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )


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

    def _call(
        self,
        method: str,
        values: Values | None = None,
        reason: str | None = None,
        members: Members | None = None,
    ) -> dict[str, Any]:
        command = exec_command(
            self.docker, self.container, self.port, build_request(method, values, reason, members)
        )
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

    def put(self, values: Values, members: Members | None = None) -> dict[str, Any]:
        state = self._call("PUT", values, members=members)
        if values_of(state) != values or (
            members is not None and not same_members(members_of(state), members)
        ):
            raise RuntimeApiError(f"{self.container}: asked for {values.as_dict()}, nginx serves {state}")
        return state

    def resolve(self, hosts: Sequence[str]) -> dict[str, str]:
        """Host name -> IPv4 address, as the lb container resolves it (the resolver nginx would use)."""
        resolved: dict[str, str] = {}
        for host in hosts:
            try:
                result = self.runner(
                    [self.docker, "exec", self.container, "getent", "ahostsv4", host], self.timeout
                )
            except subprocess.TimeoutExpired:
                raise RuntimeApiError(
                    f"{self.container}: resolving {host} took over {self.timeout} s"
                ) from None
            first = next(iter(parse_getent(result.stdout).values()), None) if result.returncode == 0 else None
            if not first:
                raise RuntimeApiError(
                    f"{self.container}: cannot resolve {host} (getent exited {result.returncode})"
                )
            resolved[host] = first
        return resolved

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
    # Peers taken out of the pools by this change -> seconds until their last request in flight ended.
    drained: dict[str, float] | None = None


def ensure_guard_cleared(client: Client, reason: str, check_mode: bool = False) -> Outcome:
    """No guard record on nginx; a no-op (not changed) when there is none."""
    before = client.get()
    if guard_of(before) is None:
        return Outcome(False, before, before)
    if check_mode:
        return Outcome(True, before, {**before, "guard": None, "guard_in_force": False})
    return Outcome(True, before, client.clear_guard(reason))


def in_flight(state: Mapping[str, Any], peers: set[str]) -> dict[str, int]:
    """Requests still in flight on ``peers`` (those with none left are not listed)."""
    counts = state.get("in_flight") or {}
    return {peer: int(counts[peer]) for peer in sorted(peers) if int(counts.get(peer) or 0) > 0}


def wait_drained(
    client: Client,
    peers: set[str],
    timeout: float,
    poll: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, float]:
    """Wait until no request is in flight on ``peers``: peer -> seconds it took.

    RuntimeApiError when some are still busy after ``timeout`` seconds.
    """
    start = clock()
    pending = set(peers)
    drained: dict[str, float] = {}
    while True:
        busy = in_flight(client.get(), pending)
        now = clock()
        for peer in sorted(pending - set(busy)):
            drained[peer] = round(now - start, 3)
        pending = set(busy)
        if not pending:
            return drained
        if now - start >= timeout:
            raise RuntimeApiError(
                f"{client.container}: requests still in flight after {timeout} s on members taken out: {busy}"
            )
        sleep(poll)


def ensure(
    client: Client,
    desired: Values,
    check_mode: bool = False,
    members: Members | None = None,
    drain_timeout: float = 30,
) -> Outcome:
    """Make nginx serve ``desired`` (and ``members``, when given); a no-op (not changed) when it already does.

    Members taken out are drained: the call returns once their last request in flight has ended.
    """
    before = client.get()
    if members is not None:
        members = with_peers(members, client.resolve(unresolved_hosts(members)))
    if values_of(before) == desired and (members is None or same_members(members_of(before), members)):
        return Outcome(False, before, before)
    if check_mode:
        after = {**before, **desired.as_dict()}
        if members is not None:
            after["members"] = members
        return Outcome(True, before, after)
    after = client.put(desired, members)
    removed = peers_of(members_of(before)) - peers_of(members_of(after)) if members is not None else set()
    drained = wait_drained(client, removed, drain_timeout) if removed else {}
    return Outcome(True, before, after, drained)


def values_text(state: Mapping[str, Any]) -> str:
    """The weights and each pool's members (name peer), one per line, for a diff."""
    lines = [f"{f}: {state.get(f)}\n" for f in FIELDS]
    if "members" not in state:
        return "".join(lines)
    members = members_of(state)
    for pool in POOLS:
        lines.append(f"{pool} members:\n")
        lines.extend(f"  - {m['name']} {m['peer']}\n" for m in sorted(members[pool], key=lambda m: m["name"]))
    return "".join(lines)


def diff_of(outcome: Outcome, container: str, guard: bool = False) -> dict[str, str]:
    """Ansible's diff of a change: the values, or (``guard``) the guard's record; empty without a change."""
    if not outcome.changed:
        return {}
    if guard:
        before = guard_line(guard_of(outcome.before))
        after = guard_line(guard_of(outcome.after))
    else:
        before = values_text(outcome.before)
        after = values_text(outcome.after)
    return {
        "before": before,
        "after": after,
        "before_header": f"{container} runtime",
        "after_header": f"{container} runtime",
    }
