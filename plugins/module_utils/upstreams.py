"""Where nginx reaches each member of a pool, as written into nginx.conf.

With ``rollout_upstream_via: published`` a member is its host's address and published port, which nginx can
always resolve. With ``network`` the members are containers on the lb's Docker network: nginx resolves a name
once, when it loads the configuration, and fails to load at all when a name does not resolve. So the config
carries each running container's address on that network instead of its name:

- nginx never needs a pool's containers to exist to validate or load the configuration (a pool that is not
  running is simply left out, and the rollout refuses to send it traffic);
- a container recreated with a new address changes the configuration, which is a structural change and
  reloads nginx, where a name would have kept nginx on the old, dead address until some later reload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils.topology import CONTAINER_PORT

UPSTREAM_VIA = ("published", "network")


class UpstreamError(ValueError):
    """Inputs that cannot describe a pool's upstreams."""


def network_addresses(network_info: Mapping[str, Any] | None) -> dict[str, str]:
    """Container name -> IPv4 address of the containers running on a Docker network.

    ``network_info`` is the registered result of ``community.docker.docker_network_info`` (a network that
    does not exist has no containers). Docker lists only running containers under ``Containers``.
    """
    if not network_info or not network_info.get("exists"):
        return {}
    containers = (network_info.get("network") or {}).get("Containers") or {}
    addresses = {}
    for endpoint in containers.values():
        name = str(endpoint.get("Name") or "")
        address = str(endpoint.get("IPv4Address") or "").split("/", 1)[0]
        if name and address:
            addresses[name] = address
    return addresses


def upstreams(
    members: Iterable[Mapping[str, Any]],
    network_info: Mapping[str, Any] | None = None,
    via: str = "published",
) -> list[dict[str, str]]:
    """nginx server entries ``{name, address}`` for the pool ``members`` (from the ``pool`` filter).

    ``network_info`` (the lb network's ``docker_network_info`` result) is only read with ``via == 'network'``:
    then only the members running on that network are returned, at their address there.
    """
    if via not in UPSTREAM_VIA:
        raise UpstreamError(f"via must be one of {list(UPSTREAM_VIA)}, got {via!r}")
    members = list(members)
    if via == "published":
        return [{"name": m["name"], "address": m["upstream"]} for m in members]
    running = network_addresses(network_info)
    return [
        {"name": m["name"], "address": f"{running[m['name']]}:{CONTAINER_PORT}"}
        for m in members
        if m["name"] in running
    ]
