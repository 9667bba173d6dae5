"""Every panel query of the committed Grafana dashboards parses as PromQL, by Prometheus' own parser.

Each query, with the window variable set to a shipped inventory's rate window, becomes a recording rule of a
throw-away rules file that ``promtool check rules`` checks. That they return data against a real Prometheus
during a rollout is tests/integration/test_dashboards_live.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.dashboards import committed_targets

WINDOWS = {"local": "5s", "production": "1m"}


@pytest.mark.parametrize("inventory", sorted(WINDOWS))
def test_every_panel_query_is_valid_promql(inventory: str, tmp_path: Path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make test-tools` (Debian package prometheus)")
    targets = committed_targets({"window": WINDOWS[inventory], "datasource": "prometheus"})
    assert targets
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [{"record": f"dashboard:query:{n}", "expr": t.expr} for n, t in enumerate(targets)],
            }
        ]
    }
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(targets)} rules found" in checked.stdout
