"""report.html opens in a real browser with the network off: Debian's headless Chromium loads it from disk
inside a network namespace with no interface up (``unshare -n``), takes a screenshot, and the charts are
seen painted - the charts' paper tint covers most of their area and the timeline's verdict bars show.

Needs ``chromium`` (Debian package) and root or CAP_SYS_ADMIN for ``unshare -n``; the test fails, not skips,
without them. The screenshot is kept as results/report-screenshot.png."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.msgroute.rollout.plugins.module_utils.report_charts import NEW_POOL, PAPER
from ansible_collections.msgroute.rollout.plugins.modules import rollout_report
from matplotlib import image as mpimg

from tests.support import RESULTS
from tests.support.browser import screenshot
from tests.unit.plugins.module_utils.guard_samples import guard
from tests.unit.plugins.module_utils.report_samples import VERSION, rolled_back_run

WIDTH = 1200
# The timeline's Successful bar: #2e7d32 at alpha 0.8 over the white axes, as Agg blends it.
SUCCESS_BAR = np.array([88, 151, 91])


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def render(directory: Path, capsys: pytest.CaptureFixture) -> Path:
    for name, data in rolled_back_run().items():
        (directory / name).write_text(json.dumps(data))
    # An lb also answers a guard rollback an earlier run saw and a shadow run cleared: the page lists it.
    args = {"results_dir": str(directory), "version": VERSION, "guard": [guard(active=False)]}
    with patch_module_args(args), pytest.raises(SystemExit):
        rollout_report.main()
    assert json.loads(capsys.readouterr().out)["changed"] is True
    return directory / "report.html"


def chart_sizes(page: str) -> list[tuple[int, int]]:
    sizes = []
    for encoded in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page):
        height, width = mpimg.imread(io.BytesIO(base64.b64decode(encoded)), format="png").shape[:2]
        sizes.append((width, height))
    return sizes


def test_the_report_opens_offline_in_chromium_and_its_charts_paint(tmp_path, capsys):
    page = render(tmp_path, capsys)
    text = page.read_text()
    assert "<h2>Guard alerts</h2>" in text and "<td>cleared</td>" in text
    sizes = chart_sizes(text)
    assert len(sizes) == 4  # the timeline and one chart per step
    shot = tmp_path / "screenshot.png"
    # Tall enough for the whole page: the charts plus the tables and text around them.
    done = screenshot(page, shot, WIDTH, height=sum(size[1] for size in sizes) + 1600)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]

    pixels = (mpimg.imread(str(shot))[:, :, :3] * 255).round().astype(int)
    paper = np.all(pixels == rgb(PAPER), axis=2).sum()
    chart_area = sum(w * h for w, h in sizes)
    # The paper shows around and between the axes of every chart; a chart that did not load paints none.
    assert paper > 0.15 * chart_area, (paper, chart_area)
    assert np.all(np.abs(pixels - SUCCESS_BAR) <= 3, axis=2).sum() > 500
    # Each step chart's traffic share per pool: the new pool's line painted (three charts).
    assert np.all(np.abs(pixels - rgb(NEW_POOL)) <= 8, axis=2).sum() > 3 * 200
    # Not blank: the page has text, tables and charts in many colours.
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100
    RESULTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, RESULTS / "report-screenshot.png")
