"""Prometheus and Alertmanager as role monitoring runs them: behind basic auth (their web configs).

inventories/local makes its password on first use (``lookup('ansible.builtin.password', ...)``) in
inventories/local/.secrets/monitoring_password; whatever queries that Prometheus reads it from there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from tests.support import ROOT

LOCAL_USER = "msgroute"
LOCAL_PASSWORD_FILE = ROOT / "inventories" / "local" / ".secrets" / "monitoring_password"
LOCAL_PROMETHEUS = "http://127.0.0.1:19090"


def local_auth() -> tuple[str, str]:
    """(user, password) of inventories/local's Prometheus and Alertmanager; fails when never generated."""
    if not LOCAL_PASSWORD_FILE.exists():
        raise AssertionError(f"{LOCAL_PASSWORD_FILE} is missing: run prepare.yml on inventories/local first")
    # The password lookup stores "<password> salt=..." when it made a salt; the password is the first word.
    return LOCAL_USER, LOCAL_PASSWORD_FILE.read_text().split()[0]


def ready(base_url: str) -> bool:
    """Whether inventories/local's Prometheus or Alertmanager at ``base_url`` answers /-/ready, with auth."""
    try:
        return requests.get(f"{base_url}/-/ready", auth=local_auth(), timeout=2).status_code == 200
    except requests.RequestException:
        return False


def prometheus_query(
    query: str, base_url: str = LOCAL_PROMETHEUS, auth: tuple[str, str] | None = None, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """The result list of an instant query; ``auth`` defaults to inventories/local's credentials."""
    response = requests.get(
        f"{base_url}/api/v1/query", params={"query": query}, auth=auth or local_auth(), timeout=timeout
    )
    response.raise_for_status()
    return response.json()["data"]["result"]


LOCAL_ALERTMANAGER = "http://127.0.0.1:19093"


@contextmanager
def guard_silenced(minutes: int = 60, base_url: str = LOCAL_ALERTMANAGER) -> Iterator[str]:
    """The documented maintenance path: an Alertmanager silence on every rollback alert (the guard hears none)
    for as long as the block runs; the silence is expired afterwards. Yields the silence id."""
    now = datetime.now(UTC)
    silence = {
        "matchers": [{"name": "rollout_action", "value": "rollback", "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
        "createdBy": "tests",
        "comment": "the in-play gate is under test, not the guard",
    }
    answer = requests.post(f"{base_url}/api/v2/silences", json=silence, auth=local_auth(), timeout=5)
    answer.raise_for_status()
    silence_id = answer.json()["silenceID"]
    try:
        yield silence_id
    finally:
        requests.delete(f"{base_url}/api/v2/silence/{silence_id}", auth=local_auth(), timeout=5)


# ------------------------------------------------------------------ what Alertmanager sends the guard


def alert(
    status: str = "firing",
    action: str = "rollback",
    version: str = "2.0.0",
    phase: str = "partial",
    name: str = "MsgrouteLatencyAboveTrigger",
) -> dict[str, Any]:
    """One alert of Alertmanager's webhook body, as the generated rules label and annotate it."""
    return {
        "status": status,
        "labels": {
            "alertname": name,
            "rollout_action": action,
            "version": version,
            "phase": phase,
            "severity": "critical" if action == "rollback" else "warning",
        },
        "annotations": {
            "summary": f"p95 above the rollback trigger ({phase}, version {version})",
            "value": "81.2ms",
            "threshold": "65ms",
        },
        "startsAt": "2026-12-02T07:00:00Z",
    }


def webhook(*alerts: dict[str, Any]) -> str:
    """Alertmanager's webhook body (version 4)."""
    return json.dumps(
        {
            "version": "4",
            "status": alerts[0]["status"] if alerts else "firing",
            "receiver": "msgroute-guard",
            "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": list(alerts),
        }
    )
