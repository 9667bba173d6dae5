"""Filters that expose plugins/module_utils/topology.py to playbooks and roles."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.msgroute.rollout.plugins.module_utils.topology import TopologyError, pool


def _pool(hosts: Any, hostvars: Any, kind: str) -> list[dict[str, Any]]:
    if isinstance(hosts, str):
        hosts = [hosts]
    try:
        return pool(list(hosts or []), hostvars, kind)
    except TopologyError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    """msgroute.rollout.pool: the instances of a pool, computed from inventory."""

    def filters(self) -> dict[str, Any]:
        return {"pool": _pool}
