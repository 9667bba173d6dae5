"""rollout_report end to end through AnsibleModule: a results directory as the roles write it in, report.html
and timeline.png out; the page's data, every chart painted, nothing fetched from the network."""

from __future__ import annotations

import base64
import datetime
import io
import json
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.msgroute.rollout.plugins.module_utils.report_charts import NEW_POOL
from ansible_collections.msgroute.rollout.plugins.modules import rollout_report
from matplotlib import image as mpimg

from tests.unit.plugins.module_utils.guard_samples import REASON as GUARD_REASON
from tests.unit.plugins.module_utils.report_samples import (
    ROLLBACK_REASON,
    VERSION,
    guard_rolled_back_run,
    promoted_run,
    rolled_back_run,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_module(args: dict[str, Any], capsys: pytest.CaptureFixture) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        rollout_report.main()
    result = json.loads(capsys.readouterr().out)
    assert exited.value.code == (1 if result.get("failed") else 0)
    return result


def results_dir(tmp_path: Path, files: dict) -> Path:
    directory = tmp_path / "results"
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_text(json.dumps(data, indent=2) + "\n")
    (directory / "loadgen_summary.json").write_text('{"not": "a gate report"}\n')
    return directory


@pytest.fixture
def no_network(monkeypatch):
    """Rendering must not open a socket: any attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the report tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def page_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert found, "the page embeds its data"
    return json.loads(found.group(1))


def painted(png: bytes) -> float:
    """Standard deviation of the image's pixels: 0 for a blank (one-colour) image."""
    assert png.startswith(PNG_SIGNATURE)
    return float(mpimg.imread(io.BytesIO(png), format="png").std())


def test_a_rolled_back_run_renders_its_steps_thresholds_verdicts_and_reason(tmp_path, capsys, no_network):
    directory = results_dir(tmp_path, rolled_back_run())
    result = run_module({"results_dir": str(directory), "version": VERSION}, capsys)

    assert result["changed"] is True
    assert result["report"] == str(directory / "report.html")
    assert result["decision"]["outcome"] == "rolled back"
    assert result["decision"]["reason"] == ROLLBACK_REASON
    page = (directory / "report.html").read_text()
    data = page_data(page)
    assert [(r["step"], r["verdict"], r["rolled_back"]) for r in data["rows"]] == [
        ("shadow mirror 10%", "Successful", False),
        ("partial 25%", "Successful", False),
        ("partial 50%", "Failed", True),
    ]
    assert [s["thresholds"]["max_p95_ms"] for s in data["steps"]] == [45.0, 48.0, 48.0]
    assert data["rows"][-1]["p95_ms"] == {"worst": 83.1, "threshold": 48.0, "breached": True}
    assert data["decision"]["reason"] == ROLLBACK_REASON
    assert "Rolled back at 2026-12-01T10:04:21Z" in page
    assert "83.1!/48" in result["table"]


def test_every_chart_image_exists_is_a_png_and_is_painted(tmp_path, capsys, no_network):
    directory = results_dir(tmp_path, promoted_run())
    run_module({"results_dir": str(directory), "version": VERSION}, capsys)

    page = (directory / "report.html").read_text()
    images = [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]
    # One chart per step (five) and the timeline.
    assert len(images) == 6
    assert all(painted(png) > 0.01 for png in images)
    timeline = (directory / "timeline.png").read_bytes()
    assert painted(timeline) > 0.01
    assert timeline in images
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)


def new_pool_pixels(png: bytes) -> int:
    """Pixels of the new pool's line (report_charts.NEW_POOL) in the chart's top third, its traffic share."""
    pixels = (mpimg.imread(io.BytesIO(png), format="png")[:, :, :3] * 255).round()
    top = pixels[: pixels.shape[0] // 3]
    colour = np.array([int(NEW_POOL[i : i + 2], 16) for i in (1, 3, 5)])
    return int(np.all(np.abs(top - colour) <= 8, axis=2).sum())


def test_a_guard_rollback_renders_the_guard_alert_and_every_steps_traffic_share(tmp_path, capsys, no_network):
    files = guard_rolled_back_run(datetime.datetime(2026, 12, 1, 11, 0, tzinfo=datetime.UTC))
    directory = results_dir(tmp_path, files)
    result = run_module({"results_dir": str(directory), "version": VERSION}, capsys)
    page = (directory / "report.html").read_text()
    data = page_data(page)

    assert [
        (a["alert"], a["value"], a["threshold"], a["time"], a["new_weight_before"]) for a in data["guard"]
    ] == [("MsgrouteLatencyAboveTrigger", "81.2ms", "65ms", "2025-12-02T07:20:00Z", 75.0)]
    assert "<h2>Guard alerts</h2>" in page
    assert result["guard_alerts"] == data["guard"]
    assert result["decision"]["text"] == f"{GUARD_REASON}, from partial 75% to legacy"
    shares = [(s["step"], s["traffic"]["kind"], round(s["traffic"]["share"], 1)) for s in data["steps"]]
    assert shares == [
        ("shadow mirror 10%", "mirrored", 10.0),
        ("partial 25%", "live", 25.0),
        ("partial 50%", "live", 50.0),
        ("partial 75%", "live", 75.0),
    ]
    assert [r["traffic"]["source"] for r in data["rows"]] == ["measurements"] * 4
    images = [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]
    assert len(images) == 5  # the timeline and one chart per step
    assert all(painted(png) > 0.01 for png in images)
    # Every step chart draws the new pool's share of the traffic on top.
    assert all(new_pool_pixels(png) > 200 for png in images[1:])


def test_a_second_run_on_the_same_results_changes_nothing(tmp_path, capsys):
    directory = results_dir(tmp_path, rolled_back_run())
    run_module({"results_dir": str(directory)}, capsys)
    first = (directory / "report.html").read_bytes(), (directory / "timeline.png").read_bytes()
    again = run_module({"results_dir": str(directory)}, capsys)
    assert again["changed"] is False
    assert ((directory / "report.html").read_bytes(), (directory / "timeline.png").read_bytes()) == first


def test_check_mode_renders_and_writes_nothing(tmp_path, capsys):
    directory = results_dir(tmp_path, rolled_back_run())
    result = run_module({"results_dir": str(directory), "_ansible_check_mode": True}, capsys)
    assert result["changed"] is True
    assert (
        result["table"].splitlines()[-1] == f"REPORT: {directory / 'report.html'} (check mode: not written)"
    )
    assert not (directory / "report.html").exists()
    assert not (directory / "timeline.png").exists()


def test_write_false_only_summarises(tmp_path, capsys):
    directory = results_dir(tmp_path, promoted_run())
    result = run_module({"results_dir": str(directory), "write": False}, capsys)
    assert result["changed"] is False
    assert result["decision"]["text"] == "promoted to full 100% (Successful)"
    assert len(result["rows"]) == 5
    assert "report" not in result
    assert not (directory / "report.html").exists()


def test_a_missing_results_directory_gives_an_empty_report(tmp_path, capsys):
    directory = tmp_path / "nowhere" / "results"
    result = run_module({"results_dir": str(directory)}, capsys)
    assert result["rows"] == []
    assert result["decision"]["outcome"] == "none"
    assert painted((directory / "timeline.png").read_bytes()) > 0.01
    assert page_data((directory / "report.html").read_text())["rows"] == []


def test_without_matplotlib_the_table_comes_with_a_warning_and_nothing_is_written(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(rollout_report, "HAS_MATPLOTLIB", False)
    monkeypatch.setattr(rollout_report, "MATPLOTLIB_IMPORT_ERROR", "No module named 'matplotlib'")
    # Recorded at the call: where the controller's code is loaded in the same process (other tests import
    # ansible.errors), ansible-core routes module warnings to its display instead of the result.
    warned: list[str] = []
    monkeypatch.setattr(
        rollout_report.AnsibleModule, "warn", lambda self, message, **kw: warned.append(message)
    )
    directory = results_dir(tmp_path, rolled_back_run())
    result = run_module({"results_dir": str(directory)}, capsys)
    assert result["changed"] is False
    assert any("(matplotlib)" in message for message in warned)
    assert result["table"].splitlines()[-1] == "REPORT: not written (matplotlib is missing on the controller)"
    assert result["decision"]["reason"] == ROLLBACK_REASON
    assert not (directory / "report.html").exists()
