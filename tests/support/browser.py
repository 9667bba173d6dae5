"""A page on disk opened in Debian's headless Chromium with the network taken away, as a screenshot.

Chromium runs inside a network namespace with no interface up (``unshare -n``, root or CAP_SYS_ADMIN), and
resolves no name and reaches no proxy there; used by tests/browser and by tools/readme_report.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def screenshot(page: Path, out: Path, width: int, height: int) -> subprocess.CompletedProcess:
    """Chromium's screenshot of ``page`` at ``width`` x ``height`` into ``out``; asserts both tools exist."""
    chromium = shutil.which("chromium")
    unshare = shutil.which("unshare")
    assert chromium, "install Debian's chromium package (apt-get install chromium)"
    assert unshare, "unshare (util-linux) is needed to take the network away"
    command = [
        unshare, "-n", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        # Belt and braces inside the empty namespace: no name resolves, every proxy connection is refused.
        "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
        f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
