"""Filters that expose plugins/module_utils/guard_record.py to playbooks and roles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.msgroute.rollout.plugins.module_utils import guard_record


def _guard_standing(value: Any, version: str | None = None) -> list[dict[str, Any]]:
    try:
        return guard_record.active(value, version)
    except ValueError as exc:
        raise AnsibleFilterError(f"guard_standing: {exc}") from exc


def _guard_reason(record: Any) -> str:
    if not isinstance(record, Mapping):
        raise AnsibleFilterError(f"guard_reason: a guard record must be a dict, got {record!r}")
    return guard_record.reason(record)


def _guard_silences(value: Any, version: str | None = None) -> list[dict[str, str]]:
    try:
        return guard_record.pausing_silences(value, version)
    except ValueError as exc:
        raise AnsibleFilterError(f"guard_silences: {exc}") from exc


class FilterModule:
    """msgroute.rollout.guard_standing, guard_reason, guard_silences: the guard's records and pauses."""

    def filters(self) -> dict[str, Any]:
        return {
            "guard_standing": _guard_standing,
            "guard_reason": _guard_reason,
            "guard_silences": _guard_silences,
        }
