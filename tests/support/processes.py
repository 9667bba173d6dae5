"""Real ``python -m router_app`` and ``python -m router_app.sink`` processes on free loopback ports.

Each is waited for until it answers, and is stopped by whoever started it (the fixtures in the suites'
conftest.py files stop every process a test started).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tests.support import ROOT
from tests.support.net import free_port


@dataclass
class Process:
    proc: subprocess.Popen[str]
    url: str
    port: int

    def stop(self, timeout: float = 20.0) -> tuple[int, str]:
        """SIGTERM, wait, and return (exit code, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err or ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without ROUTER_* (a child reads only what a test gives it), PYTHONPATH the root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start(
    args: Sequence[str], port: int, ready_path: str, env: Mapping[str, str], timeout: float = 15.0
) -> Process:
    """Start ``args`` from the root; return once ``ready_path`` answers 200, fail with its log if it exits."""
    proc = subprocess.Popen(
        list(args), cwd=ROOT, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process = Process(proc, f"http://127.0.0.1:{port}", port)
    what = " ".join(args[1:])
    deadline = time.monotonic() + timeout
    while not answers(process.url + ready_path):
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited early ({proc.returncode}): {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{what} did not answer {ready_path} within {timeout:g} s")
        time.sleep(0.05)
    return process


def start_router(**env: str) -> Process:
    """``python -m router_app`` on a free port with ``env`` (ROUTER_* settings); returns once it is ready."""
    port = free_port()
    settings = {"ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": str(port), **env}
    return start([sys.executable, "-m", "router_app"], port, "/ready", child_env(settings))


def start_sink(name: str = "sink", *args: str) -> Process:
    """``python -m router_app.sink`` on a free port; returns once it answers /health."""
    port = free_port()
    command = [sys.executable, "-m", "router_app.sink", "--port", str(port), "--name", name, *args]
    return start(command, port, "/health", child_env())


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The docker CLI, its output kept as text; bounded at 2 minutes."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120)
