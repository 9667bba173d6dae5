"""README's report example is what tools/readme_report.py makes of docs/report-example/: the summary table
between the report-summary markers is the module's real output for those results, and the images it
committed exist, are PNGs and stay small."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.msgroute.rollout.plugins.modules import rollout_report

from tests.support import ROOT
from tools import readme_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_readmes_summary_table_is_the_modules_output_for_the_example_results(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    reports = readme_report.gate_reports(readme_report.EXAMPLE)
    assert len(reports) >= 5
    for path in reports:
        shutil.copyfile(path, results / path.name)
    args = {"results_dir": str(results), "version": readme_report.VERSION, "write": False}
    with patch_module_args(args), pytest.raises(SystemExit):
        rollout_report.main()
    table = json.loads(capsys.readouterr().out)["table"]
    readme = (ROOT / "README.md").read_text()
    start, end = (re.escape(m) for m in readme_report.MARKERS)
    block = re.search(start + r"\n```\n(.*?)\n```\n" + end, readme, re.S)
    assert block, "README.md holds the table between the report-summary markers"
    # write=false names no report; the tool's run ends with where the rehearsal writes it.
    assert block.group(1) == table + "\nREPORT: results/report.html"
    # The tool rewrites that block and nothing else: the same table gives the same README.
    assert readme_report.readme_with(block.group(1), readme) == readme
    assert readme_report.readme_with("X", readme).count("\n```\nX\n```\n") == 1


@pytest.mark.parametrize("name", ["report-screenshot.png", "timeline.png"])
def test_readmes_images_are_committed_small_pngs(name):
    path = Path(ROOT / "docs" / name)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert 10_000 < len(data) < 300_000
    assert f"](docs/{name})" in (ROOT / "README.md").read_text()
