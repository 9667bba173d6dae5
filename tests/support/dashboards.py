"""The committed Grafana dashboards (roles/monitoring/files/dashboards) read as Grafana reads them.

Every panel target's PromQL with the dashboard variables substituted the way Grafana interpolates them
(``$name``, ``${name}``, ``${name:format}`` with a single value), so a test can run exactly what a panel asks
Prometheus. A variable the caller does not give is an error, never left in the query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import ROOT

DASHBOARDS = ROOT / "roles" / "monitoring" / "files" / "dashboards"
# Grafana's variable syntaxes: $name, ${name}, ${name:format}, [[name]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel_id: int
    panel: str
    ref: str
    expr: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel_id} {self.panel} / {self.ref}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with every dashboard variable replaced; KeyError names one the caller did not give."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in variables:
            raise KeyError(f"dashboard variable ${name} has no value (in {expr!r})")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row keeps its panels inside


def targets(dashboard: Mapping[str, Any], variables: Mapping[str, str]) -> list[Target]:
    """Every panel target's PromQL in ``dashboard`` (a dashboard model) with ``variables`` substituted."""
    return [
        Target(
            dashboard["title"],
            panel.get("id", 0),
            panel.get("title", ""),
            target.get("refId", ""),
            substitute(target["expr"], variables),
        )
        for panel in _panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if not target.get("hide")
    ]


def committed_targets(variables: Mapping[str, str]) -> list[Target]:
    return [
        target for path in dashboard_files() for target in targets(json.loads(path.read_text()), variables)
    ]
