"""The real playbooks against inventories/local, with real traffic through the real nginx.

Shared by tests/integration, tests/e2e and bench/rollback: run a playbook, run bounded synthetic load
(``python -m router_app.loadgen``, loopback only, as the rehearsal's loadgen container runs it) while a
playbook works, and read the new routers' metrics and nginx's recorded traffic settings.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support import ROOT
from tests.support.metrics import Metrics, scrape
from tests.support.playbooks import PlaybookRun
from tests.support.playbooks import run_playbook as run_any_playbook

INVENTORY = "inventories/local"
LB_URL = "http://127.0.0.1:18080"
NEW_ROUTER_PORTS = (18081, 18082)
DATA_DIR = Path("/var/lib/msgroute-rollout/local")
# The guard's record on the lb (role traffic; rollout_state_dir/guard).
GUARD_RECORD = DATA_DIR / "lb" / "guard" / "guard.json"
LB_METRICS = "http://127.0.0.1:9145/metrics"


def run_playbook(name: str, *args: str, inventory: str = INVENTORY, timeout: float = 1200) -> PlaybookRun:
    """playbooks/<name> on ``inventory``, like a user would run it."""
    return run_any_playbook(f"playbooks/{name}", *args, inventories=(inventory,), timeout=timeout)


@dataclass
class Load:
    """What the synthetic clients saw (the loadgen's final summary)."""

    summary: dict[str, Any] = field(default_factory=dict)


@contextmanager
def load(rate: int = 100, max_seconds: int = 600, concurrency: int = 8) -> Iterator[Load]:
    """Bounded load through nginx for as long as the block runs (at most ``max_seconds``)."""
    result = Load()
    proc = subprocess.Popen(
        [sys.executable, "-m", "router_app.loadgen", "--target", LB_URL, "--rate", str(rate),
         "--duration", str(max_seconds), "--concurrency", str(concurrency), "--report-every", "3600"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield result
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        summaries = [line for line in lines if line.get("event") == "summary"]
        assert summaries, f"loadgen printed no summary: {out[-2000:]} {err[-2000:]}"
        result.summary = summaries[-1]


def route(message_id: str, timeout: float = 5) -> requests.Response:
    body = {"id": message_id, "source": "integration-test", "type": "telemetry", "payload": {"n": 1}}
    return requests.post(f"{LB_URL}/v1/route", json=body, timeout=timeout)


def router_metrics(port: int) -> Metrics:
    """The metrics of the new router published on ``port``."""
    return scrape(f"http://127.0.0.1:{port}/metrics")


def traffic_state() -> dict[str, Any]:
    return json.loads((DATA_DIR / "lb" / "traffic.json").read_text())


def guard_record() -> dict[str, Any] | None:
    """The guard's active record on the local lb, or None."""
    try:
        record = json.loads(GUARD_RECORD.read_text())
    except FileNotFoundError:
        return None
    return record if record.get("active") else None


def fresh_start() -> None:
    """No rollout containers, then prepare: legacy stand-in and nginx on legacy only."""
    destroyed = run_playbook("destroy.yml", "-e", "destroy_confirm=true")
    assert destroyed.returncode == 0, destroyed.output[-3000:]
    prepared = run_playbook("prepare.yml")
    assert prepared.returncode == 0, prepared.output[-3000:]


def lb_weights() -> tuple[float, float]:
    """(new weight, shadow percent) the lb serves with, from its own metrics."""
    metrics = scrape(LB_METRICS)
    return metrics.value("msgroute_lb_new_weight"), metrics.value("msgroute_lb_shadow_percent")


def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``condition`` every 0.5 s until it returns something true (returned), at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not seen within {seconds} s")


def set_faults(admin_token: str, **faults: Any) -> None:
    """Switch faults on in every new router at run time (their admin endpoint, deployed with the token)."""
    for port in NEW_ROUTER_PORTS:
        answer = requests.put(
            f"http://127.0.0.1:{port}/admin/faults",
            json={"enabled": True, **faults},
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=5,
        )
        assert answer.status_code == 200, answer.text


def all_legacy(prefix: str, n: int = 30) -> None:
    """``n`` messages through the lb, every one answered 200 by legacy."""
    for i in range(n):
        answer = route(f"{prefix}-{i}")
        assert answer.status_code == 200
        assert answer.headers["X-Msgroute-Pool"] == "legacy"
        assert answer.headers["X-Router-Version"] == "legacy"
