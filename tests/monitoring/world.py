"""The monitoring suite's world: role monitoring's real Prometheus and Alertmanager (tests/monitoring/
inventory.yml), deployed once for the module, with the suite's own webhook receivers standing in for the
guards of two lbs and for a user's receiver.

The receivers listen on the gateway address of the suite's Docker network, where Alertmanager's container
reaches this machine. Images: MSGROUTE_AM_PROMETHEUS_IMAGE (msgroute/prometheus:local) and
MSGROUTE_AM_ALERTMANAGER_IMAGE (msgroute/alertmanager:local), both made by prepare.yml on inventories/local.
MSGROUTE_AM_KEEP=1 keeps the world for a look.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.support import ROOT
from tests.support.playbooks import PlaybookRun, run_playbook

SUITE = ROOT / "tests" / "monitoring"
NETWORK = "msgroute-am"
PROMETHEUS = "http://127.0.0.1:29090"
ALERTMANAGER = "http://127.0.0.1:29093"
CONFIG_DIR = Path("/var/lib/msgroute-rollout/am")
CONTAINERS = ("am-prometheus", "am-alertmanager")


@dataclass
class Receiver:
    """A webhook endpoint that keeps every POST: its Authorization header and decoded JSON body."""

    name: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def start(self, host: str) -> None:
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                posts.append({"authorization": self.headers.get("Authorization"), "body": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict[str, Any]]:
        return [alert for post in self.posts for alert in post["body"]["alerts"]]

    def wait_for(self, alertname: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first post that carries ``alertname``; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for post in list(self.posts):
                if any(a["labels"].get("alertname") == alertname for a in post["body"]["alerts"]):
                    return post
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: no {alertname} within {timeout:g} s; got {self.posts}")


@dataclass
class World:
    user: str
    password: str
    token: str
    guards: tuple[Receiver, Receiver]
    user_hook: Receiver
    env: dict[str, str]
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def auth(self) -> tuple[str, str]:
        return self.user, self.password

    def apply(self, *args: str) -> PlaybookRun:
        return run_playbook(
            SUITE / "apply.yml", *args, inventories=(SUITE / "inventory.yml",), env=self.env, log_prefix="am-"
        )

    def post_alert(self, alertname: str, action: str) -> None:
        alert = {
            # A label of this run: a world kept from an earlier run (MSGROUTE_AM_KEEP) has already notified
            # the same alert, and Alertmanager would not repeat it before repeat_interval.
            "labels": {
                "suite_run": self.run_id,
                "alertname": alertname,
                "rollout_action": action,
                "version": "2.0.0",
                "phase": "partial",
            },
            "annotations": {"summary": f"{alertname} from the monitoring suite", "value": "81ms"},
        }
        response = requests.post(f"{ALERTMANAGER}/api/v2/alerts", json=[alert], auth=self.auth, timeout=5)
        assert response.status_code == 200, response.text


def gateway() -> str:
    subprocess.run(["docker", "network", "create", NETWORK], capture_output=True, check=False)
    out = subprocess.run(
        ["docker", "network", "inspect", NETWORK, "-f", "{{(index .IPAM.Config 0).Gateway}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()
