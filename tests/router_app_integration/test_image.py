"""The router image: multi-stage build, runs as uid 10001 on a read-only root filesystem, becomes healthy,
routes, dispatches to the sink entry point of the same image, and stops cleanly.

Needs a Docker engine and a base image with python3 3.11 + python3-venv: ``MSGROUTE_BASE_IMAGE``, else the
newest local ``local/debian:bookworm-*`` image (what ``playbooks/prepare.yml`` builds). Fails, with the
reason, when neither exists (never skips). The image, containers and network it creates carry a random suffix
and are removed at the end.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import MissingImage, base_image

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.docker


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def local_cas() -> str:
    """The host's locally added CAs, for pip behind a TLS-intercepting proxy (build stage only)."""
    folder = Path("/usr/local/share/ca-certificates")
    return "\n".join(p.read_text() for p in sorted(folder.rglob("*.crt"))) if folder.is_dir() else ""


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    try:
        base = base_image()
    except MissingImage as exc:
        pytest.fail(str(exc))
    tag = f"msgroute/router:test-{uuid.uuid4().hex[:8]}"
    build = docker(
        "build", "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"EXTRA_CA_CERTS={local_cas()}",
        "-t", tag, str(ROOT / "router_app"), check=False, timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    yield tag
    docker("rmi", "-f", tag, check=False)


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    created = {"net": f"rt-net-{suffix}", "router": f"rt-router-{suffix}", "sink": f"rt-sink-{suffix}"}
    docker("network", "create", created["net"])
    yield created
    docker("rm", "-f", created["router"], created["sink"], check=False)
    docker("network", "rm", created["net"], check=False)


def wait_healthy(name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        if state.get("Health", {}).get("Status") == "healthy":
            return
        assert state["Running"], docker("logs", name, check=False).stderr[-2000:]
        time.sleep(1)
    raise AssertionError(f"{name} did not become healthy")


LOCKED = [
    "--read-only",
    "--tmpfs",
    "/tmp:size=16m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]


def test_image_runs_locked_down_and_dispatches(image: str, names: dict[str, str]) -> None:
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["/opt/venv/bin/python", "-m", "router_app"]
    assert config["Healthcheck"]["Test"][0] == "CMD"

    docker(
        "run", "-d", "--name", names["sink"], "--network", names["net"], *LOCKED, image,
        "/opt/venv/bin/python", "-m", "router_app.sink", "--host", "0.0.0.0", "--port", "9000",
    )  # fmt: skip
    docker(
        "run", "-d", "--name", names["router"], "--network", names["net"], *LOCKED, "-p", "127.0.0.1::8080",
        "-e", "ROUTER_VERSION=image-test", "-e", f"ROUTER_DESTINATIONS=sink=http://{names['sink']}:9000/deliver",
        image,
    )  # fmt: skip
    wait_healthy(names["router"])
    port = docker("port", names["router"], "8080/tcp").stdout.split(":")[-1].strip()
    assert docker("exec", names["router"], "id", "-u").stdout.strip() == "10001"
    assert docker("exec", names["router"], "touch", "/app/x", check=False).returncode != 0  # read-only root

    body = json.dumps({"id": "img-1", "source": "test", "type": "alert"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/route", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        decision = json.load(response)
        assert response.headers["X-Router-Version"] == "image-test"
    assert (decision["outcome"], decision["classification"]) == ("queued", "strategic")

    deadline = time.monotonic() + 15
    stats = {}
    while time.monotonic() < deadline:
        probe = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9000/stats').read().decode())"
        stats = json.loads(docker("exec", names["sink"], "/opt/venv/bin/python", "-c", probe).stdout)
        if stats["received"]:
            break
        time.sleep(0.3)
    assert stats["received"] == 1 and stats["duplicates"] == 0

    docker("stop", "-t", "20", names["router"], timeout=40)
    state = json.loads(docker("inspect", names["router"]).stdout)[0]["State"]
    assert state["ExitCode"] == 0
    logs = docker("logs", names["router"]).stderr.splitlines()
    assert all(json.loads(line) for line in logs)  # structured logs only
