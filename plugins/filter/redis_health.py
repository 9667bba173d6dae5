"""Filters that expose plugins/module_utils/redis_health.py to role redis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.msgroute.rollout.plugins.module_utils import redis_health


def _redis_health(
    info: Any, backlog: Any = "", prefix: str = "msgroute:q:", error: Any = ""
) -> dict[str, Any]:
    if error:
        return redis_health.down(str(error))
    if not isinstance(info, str) or not info.strip():
        return redis_health.down("INFO gave no answer")
    return redis_health.health(
        redis_health.parse_info(info), redis_health.parse_backlog(str(backlog or ""), prefix)
    )


def _redis_settings_problems(settings: Any) -> list[str]:
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError(
            f"redis_settings_problems: settings must be a dict, got {type(settings).__name__}"
        )
    return redis_health.settings_problems(settings)


class FilterModule:
    """msgroute.rollout.redis_health, redis_settings_problems: the durable queue's Redis."""

    def filters(self) -> dict[str, Any]:
        return {"redis_health": _redis_health, "redis_settings_problems": _redis_settings_problems}
