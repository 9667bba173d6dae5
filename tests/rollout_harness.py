"""Drive the real playbooks against inventories/local and real traffic through the real nginx.

Shared by the integration and end-to-end suites: run a playbook, read its recap, run bounded synthetic
load (router_app.loadgen, loopback only) while a playbook works, and read the new routers' metrics.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INVENTORY = "inventories/local"
LB_URL = "http://127.0.0.1:18080"
NEW_ROUTER_PORTS = (18081, 18082)
DATA_DIR = Path("/var/lib/msgroute-rollout/local")
RESULTS = ROOT / "results"
LOGS = RESULTS / "test-logs"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class PlaybookRun:
    name: str
    returncode: int
    output: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m.group(1): {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(self.output)
        }

    def gate_lines(self) -> list[str]:
        """The verdict lines the playbooks print ("GATE <phase> <weight>%: <verdict> - <message>")."""
        lines = [line[line.find("GATE ") :] for line in self.output.splitlines() if "GATE " in line]
        return [line.strip().strip("'\"") for line in lines]


def run_playbook(name: str, *args: str, inventory: str = INVENTORY, timeout: float = 1200) -> PlaybookRun:
    """Run playbooks/<name> like a user would; the full output is kept under results/test-logs/."""
    env = dict(
        os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1"
    )
    command = [str(BIN / "ansible-playbook"), "-i", inventory, f"playbooks/{name}", *args]
    proc = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    LOGS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%H%M%S")
    (LOGS / f"{stamp}-{name}.log").write_text(" ".join(command) + "\n" + proc.stdout + proc.stderr)
    return PlaybookRun(name, proc.returncode, proc.stdout + proc.stderr)


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


def router_metrics(port: int) -> str:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    response.raise_for_status()
    return response.text


def counter_sum(text: str, name: str, **labels: str) -> float:
    """Sum a counter's samples whose labels include ``labels`` (exposition text, no client library needed)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def traffic_state() -> dict[str, Any]:
    return json.loads((DATA_DIR / "lb" / "traffic.json").read_text())


def fresh_start() -> None:
    """No rollout containers, then prepare: legacy stand-in and nginx on legacy only."""
    destroyed = run_playbook("destroy.yml", "-e", "destroy_confirm=true")
    assert destroyed.returncode == 0, destroyed.output[-3000:]
    prepared = run_playbook("prepare.yml")
    assert prepared.returncode == 0, prepared.output[-3000:]
