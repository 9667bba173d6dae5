"""Filter that exposes plugins/module_utils/upstreams.py to the traffic role."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.msgroute.rollout.plugins.module_utils.upstreams import UpstreamError, upstreams


def _upstreams(members: Any, network_info: Any = None, via: str = "published") -> Any:
    try:
        return upstreams(list(members or []), network_info, via)
    except (UpstreamError, KeyError) as exc:
        raise AnsibleFilterError(f"upstreams: {exc}") from exc


class FilterModule:
    """msgroute.rollout.upstreams: the nginx server entries of a pool."""

    def filters(self) -> dict[str, Any]:
        return {"upstreams": _upstreams}
