"""The README's report example, made from real results: the summary table, a cropped screenshot of
report.html in headless Chromium (network off) and timeline.png.

Run from the repository root with the venv active (``make readme-report``)::

    python -m tools.readme_report [--results DIR]

The gate reports (``performance_report_*.json``, ``rollback_decision.json``) are copied from
``docs/report-example/`` - the results of a real rehearsal on inventories/local, committed - or, with
``--results``, from a results directory (they then replace the committed ones) into a temporary
``results/``, and rendered by module ``rollout_report`` itself. Written: ``docs/report-screenshot.png`` (the
top of the page: decision, summary table, timeline and guard alerts; palette-reduced to stay
small), ``docs/timeline.png``, and the table between README's ``report-summary`` markers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from ansible.module_utils.testing import patch_module_args
from PIL import Image

from tests.support import ROOT
from tests.support.browser import screenshot

EXAMPLE = ROOT / "docs" / "report-example"
README = ROOT / "README.md"
SCREENSHOT = ROOT / "docs" / "report-screenshot.png"
TIMELINE = ROOT / "docs" / "timeline.png"
VERSION = "2.0.0"
WIDTH, HEIGHT = 1200, 6000
# The top of the page (at WIDTH, for the results in docs/report-example/): title, decision, summary table,
# timeline and guard alerts; the per-step sections below are in the page, not in the README.
CROP_HEIGHT = 975
COLOURS = 128
MARKERS = ("<!-- report-summary:start -->", "<!-- report-summary:end -->")


def gate_reports(directory: Path) -> list[Path]:
    return sorted([*directory.glob("performance_report_*.json"), *directory.glob("rollback_decision.json")])


def render(results: Path) -> dict:
    """rollout_report on ``results``, as the summary task runs it; its result."""
    # Here, not at the top: the collection imports once tests.support has put collections/ on sys.path.
    from ansible_collections.msgroute.rollout.plugins.modules import rollout_report

    out = io.StringIO()
    with (
        patch_module_args({"results_dir": str(results), "version": VERSION}),
        contextlib.redirect_stdout(out),
        contextlib.suppress(SystemExit),
    ):
        rollout_report.main()
    result = json.loads(out.getvalue())
    if result.get("failed"):
        raise SystemExit(f"rollout_report failed: {result.get('msg')}")
    return result


def crop(shot: Path, out: Path) -> None:
    """The top CROP_HEIGHT pixels, reduced to COLOURS colours: a README image well under 300 KB."""
    with Image.open(shot) as image:
        top = image.convert("RGB").crop((0, 0, image.width, min(CROP_HEIGHT, image.height)))
        top.quantize(COLOURS).save(out, optimize=True)


def readme_with(table: str, readme: str) -> str:
    start, end = MARKERS
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(readme):
        raise SystemExit(f"README.md has no {start} ... {end} block")
    return pattern.sub(lambda _m: f"{start}\n```\n{table}\n```\n{end}", readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="take the gate reports from this results directory")
    args = parser.parse_args()
    if args.results:
        found = gate_reports(args.results)
        if not found:
            raise SystemExit(f"no gate reports in {args.results}")
        for old in gate_reports(EXAMPLE):
            old.unlink()
        for path in found:
            shutil.copyfile(path, EXAMPLE / path.name)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        results.mkdir()
        for path in gate_reports(EXAMPLE):
            shutil.copyfile(path, results / path.name)
        result = render(results)
        shot = Path(tmp) / "page.png"
        done = screenshot(results / "report.html", shot, WIDTH, HEIGHT)
        if done.returncode != 0 or not shot.is_file():
            raise SystemExit(f"chromium failed: {done.stderr[-2000:]}")
        crop(shot, SCREENSHOT)
        shutil.copyfile(results / "timeline.png", TIMELINE)
        # Where the rehearsal writes it, not the temporary directory.
        table = result["table"].replace(str(results), "results")
    README.write_text(readme_with(table, README.read_text()))
    print(table)
    for path in (SCREENSHOT, TIMELINE):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    sys.exit(main())
