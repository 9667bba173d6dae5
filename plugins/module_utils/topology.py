"""Where the router instances of each pool live and how nginx, the gates and the router role reach them.

One place derives every instance's container name, published port, upstream address and metrics URL from
inventory variables, so the router role, the traffic role and the gates can never disagree about them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CONTAINER_PORT = 8080

# Per pool kind: the inventory variable prefix and its defaults.
POOL_DEFAULTS: dict[str, dict[str, Any]] = {
    "new": {"prefix": "router", "instances": 2, "base_port": 18081, "name_prefix": "msgroute-router"},
    "legacy": {"prefix": "legacy", "instances": 1, "base_port": 18091, "name_prefix": "msgroute-legacy"},
}
UPSTREAM_VIA = ("published", "network")


class TopologyError(ValueError):
    """An inventory value that cannot describe a pool; the message names the host and variable."""


def _int_var(host: str, vars_: Mapping[str, Any], name: str, default: int, minimum: int) -> int:
    value = vars_.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise TopologyError(f"{host}: {name} must be an integer, got {value!r}") from None
    if number < minimum or isinstance(value, bool):
        raise TopologyError(f"{host}: {name} must be an integer >= {minimum}, got {value!r}")
    return number


def host_instances(host: str, vars_: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The instances of pool ``kind`` ('new' or 'legacy') that run on one inventory host."""
    if kind not in POOL_DEFAULTS:
        raise TopologyError(f"unknown pool kind {kind!r}; expected one of {sorted(POOL_DEFAULTS)}")
    defaults = POOL_DEFAULTS[kind]
    prefix = defaults["prefix"]
    count = _int_var(host, vars_, f"{prefix}_instances", defaults["instances"], 0)
    base_port = _int_var(host, vars_, f"{prefix}_base_port", defaults["base_port"], 1)
    if base_port + count - 1 > 65535:
        raise TopologyError(f"{host}: {prefix}_base_port {base_port} + {count} instances exceeds port 65535")
    name_prefix = str(vars_.get(f"{prefix}_name_prefix", defaults["name_prefix"]))
    via = str(vars_.get("rollout_upstream_via", "published"))
    if via not in UPSTREAM_VIA:
        raise TopologyError(f"{host}: rollout_upstream_via must be one of {list(UPSTREAM_VIA)}, got {via!r}")
    address = str(vars_.get("ansible_host", host))
    probe = str(vars_.get("rollout_probe_address", address))
    instances = []
    for index in range(1, count + 1):
        name = f"{name_prefix}-{index}"
        port = base_port + index - 1
        upstream = f"{name}:{CONTAINER_PORT}" if via == "network" else f"{address}:{port}"
        instances.append(
            {
                "kind": kind,
                "host": host,
                "index": index,
                "name": name,
                "port": port,
                "upstream": upstream,
                "url": f"http://{probe}:{port}",
                "metrics_url": f"http://{probe}:{port}/metrics",
            }
        )
    return instances


def pool(hosts: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    """All instances of pool ``kind`` across ``hosts``, in inventory order; names must be unique per host."""
    members: list[dict[str, Any]] = []
    for host in hosts:
        members.extend(host_instances(host, hostvars[host], kind))
    seen: set[str] = set()
    for member in members:
        if member["upstream"] in seen:
            raise TopologyError(f"two {kind} instances share the upstream address {member['upstream']}")
        seen.add(member["upstream"])
    return members
