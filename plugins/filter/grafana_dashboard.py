"""Filter that exposes plugins/module_utils/grafana.py to role monitoring (tasks_from: dashboards)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.msgroute.rollout.plugins.module_utils.grafana import plan


def _grafana_dashboard(
    dashboard: Any, current: Any, folder_uid: str, message: str = "msgroute.rollout"
) -> dict[str, Any]:
    if not isinstance(dashboard, Mapping):
        raise AnsibleFilterError(
            f"grafana_dashboard: expected a dashboard model, got {type(dashboard).__name__}"
        )
    if not isinstance(current, Mapping) or "status" not in current:
        raise AnsibleFilterError("grafana_dashboard: current must be the registered result of the GET (uri)")
    try:
        return plan(dashboard, current.get("json"), int(current["status"]), str(folder_uid), str(message))
    except ValueError as exc:
        raise AnsibleFilterError(f"grafana_dashboard: {exc}") from exc


class FilterModule:
    """msgroute.rollout.grafana_dashboard: whether and what to post to Grafana for one dashboard."""

    def filters(self) -> dict[str, Any]:
        return {"grafana_dashboard": _grafana_dashboard}
