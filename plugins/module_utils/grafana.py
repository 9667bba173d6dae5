"""What role monitoring sends to Grafana's HTTP API to provision the rollout's dashboards, and when.

``POST /api/dashboards/db`` with ``overwrite: true`` saves a new version every time, even of an unchanged
dashboard (Grafana answers 200 with ``version`` + 1 and keeps the old one in its history), so the role first
reads ``GET /api/dashboards/uid/<uid>`` and posts only when the stored model or its folder differs from the
collection's: a second run changes nothing and leaves Grafana's version history alone.

Grafana adds or rewrites some keys when it stores a dashboard (its numeric ``id``, ``version``); those are
left out of the comparison. Anything else Grafana changed (a user's edit in the UI) counts as a difference
and is overwritten: the collection's JSON is the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Keys Grafana assigns when it stores a dashboard; not part of what the collection provisions.
SERVER_KEYS = ("id", "version")
API_DASHBOARDS = "/api/dashboards/db"
NOT_FOUND = 404


def _comparable(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in dashboard.items() if key not in SERVER_KEYS}


def dashboard_payload(dashboard: Mapping[str, Any], folder_uid: str, message: str) -> dict[str, Any]:
    """The body of ``POST /api/dashboards/db``: the model, found by its ``uid`` (``id`` None), in the
    folder."""
    if not dashboard.get("uid"):
        raise ValueError(
            f"dashboard {dashboard.get('title')!r} has no uid: Grafana would create a copy per post"
        )
    if not folder_uid:
        raise ValueError("folder_uid: may not be empty")
    return {
        "dashboard": {**_comparable(dashboard), "id": None},
        "folderUid": folder_uid,
        "overwrite": True,
        "message": message,
    }


def needs_post(
    current: Mapping[str, Any] | None, status: int, dashboard: Mapping[str, Any], folder_uid: str
) -> bool:
    """Whether the dashboard must be posted, given Grafana's answer to ``GET /api/dashboards/uid/<uid>``
    (``status`` and its JSON body ``current``): absent, changed, or in another folder."""
    if status == NOT_FOUND:
        return True
    if status != 200 or not isinstance(current, Mapping):
        raise ValueError(f"GET /api/dashboards/uid/{dashboard.get('uid')}: unexpected answer {status}")
    stored = current.get("dashboard") or {}
    meta = current.get("meta") or {}
    return _comparable(stored) != _comparable(dashboard) or meta.get("folderUid") != folder_uid


def plan(
    dashboard: Mapping[str, Any],
    current: Mapping[str, Any] | None,
    status: int,
    folder_uid: str,
    message: str,
) -> dict[str, Any]:
    """``{"post": bool, "uid", "title", "payload"}`` for one dashboard."""
    return {
        "post": needs_post(current, status, dashboard, folder_uid),
        "uid": dashboard.get("uid"),
        "title": dashboard.get("title"),
        "payload": dashboard_payload(dashboard, folder_uid, message),
    }
