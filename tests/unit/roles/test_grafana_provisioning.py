"""Role monitoring's ``tasks_from: dashboards`` run by ansible-playbook against a stand-in for Grafana's
HTTP API.

No Grafana server can be installed here, so a small HTTP server answers the four calls the role makes, as
Grafana documents them: ``GET /api/folders/<uid>`` (404 when absent), ``POST /api/folders``,
``GET /api/dashboards/uid/<uid>`` (the stored model with Grafana's ``id`` and ``version``, 404 when absent)
and ``POST /api/dashboards/db`` (stores a new version every time, changed or not, as Grafana does). It
refuses any request without the service-account token.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import BIN, ROOT
from tests.support.dashboards import dashboard_files

TOKEN = "glsa_test-token-0123456789"
PLAYBOOK = """\
- name: Provision the dashboards
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Post them
      ansible.builtin.include_role:
        name: msgroute.rollout.monitoring
        tasks_from: dashboards
"""


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.posts: list[str] = []
        self.refused = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self.server.refused += 1
        self._answer(401, {"message": "Unauthorized"})
        return False

    def do_GET(self) -> None:
        if not self._authorised():
            return
        kind, _slash, uid = self.path.removeprefix("/api/").partition("/")
        if kind == "folders" and uid in self.server.folders:
            self._answer(200, self.server.folders[uid])
        elif self.path.startswith("/api/dashboards/uid/") and (
            stored := self.server.dashboards.get(self.path.rsplit("/", 1)[1])
        ):
            self._answer(200, stored)
        else:
            self._answer(404, {"message": "not found"})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/folders":
            self.server.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"]}
            self._answer(200, self.server.folders[body["uid"]])
        elif self.path == "/api/dashboards/db":
            assert body["overwrite"] is True and body["dashboard"]["id"] is None
            uid = body["dashboard"]["uid"]
            previous = self.server.dashboards.get(uid, {"dashboard": {"version": 0}})
            version = previous["dashboard"]["version"] + 1
            self.server.dashboards[uid] = {
                "dashboard": {**body["dashboard"], "id": 7, "version": version},
                "meta": {"folderUid": body["folderUid"]},
            }
            self.server.posts.append(uid)
            self._answer(200, {"status": "success", "uid": uid, "version": version})
        else:
            self._answer(404, {"message": "not found"})


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def play(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={BIN}/python\n"
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    command = [
        str(BIN / "ansible-playbook"),
        "-i",
        str(tmp_path / "hosts"),
        str(tmp_path / "site.yml"),
        *extra,
    ]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def words(done: subprocess.CompletedProcess) -> str:
    """The output with the callback's line wrapping undone."""
    return " ".join(done.stdout.split())


def changed(done: subprocess.CompletedProcess) -> int:
    recap = done.stdout.rsplit("PLAY RECAP", 1)[1]
    return int(recap.split("changed=", 1)[1].split()[0])


def test_the_dashboards_are_posted_once_and_a_second_run_changes_nothing(tmp_path, grafana):
    args = ("-e", f"monitoring_grafana_url={grafana.url}/", "-e", f"monitoring_grafana_token={TOKEN}")
    first = play(tmp_path, *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    committed = {
        json.loads(path.read_text())["uid"]: json.loads(path.read_text()) for path in dashboard_files()
    }
    assert sorted(grafana.posts) == sorted(committed)
    assert grafana.folders == {"msgroute-rollout": {"uid": "msgroute-rollout", "title": "msgroute rollout"}}
    for uid, board in committed.items():
        stored = grafana.dashboards[uid]
        assert stored["meta"]["folderUid"] == "msgroute-rollout"
        assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} == board
    assert changed(first) == 2  # the folder task and the post task (one change per task, both items)

    second = play(tmp_path, *args)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert changed(second) == 0
    assert len(grafana.posts) == 2, (
        "an unchanged dashboard was posted again (Grafana keeps a version per post)"
    )
    assert "0 dashboard(s) posted, 2 already current" in words(second)


def test_a_dashboard_edited_in_grafana_is_put_back(tmp_path, grafana):
    args = ("-e", f"monitoring_grafana_url={grafana.url}", "-e", f"monitoring_grafana_token={TOKEN}")
    assert play(tmp_path, *args).returncode == 0
    grafana.dashboards["msgroute-shadow-comparison"]["dashboard"]["title"] = "edited by hand"
    again = play(tmp_path, *args)
    assert again.returncode == 0, again.stdout[-3000:]
    assert grafana.posts.count("msgroute-shadow-comparison") == 2
    assert grafana.posts.count("msgroute-routing-engine-performance") == 1


def test_check_mode_reads_but_posts_nothing(tmp_path, grafana):
    args = ("-e", f"monitoring_grafana_url={grafana.url}", "-e", f"monitoring_grafana_token={TOKEN}")
    done = play(tmp_path, "--check", *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert not grafana.posts and not grafana.folders
    assert "2 dashboard(s) to post (check mode: not posted), 0 already current" in words(done)


def test_a_wrong_token_fails_the_play_and_never_shows_the_token(tmp_path, grafana):
    done = play(
        tmp_path, "-e", f"monitoring_grafana_url={grafana.url}", "-e", "monitoring_grafana_token=wrong-secret"
    )
    assert done.returncode != 0
    assert grafana.refused == 1 and not grafana.posts
    assert "wrong-secret" not in done.stdout + done.stderr


def test_without_url_and_token_nothing_is_posted(tmp_path, grafana):
    done = play(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Grafana dashboards not provisioned" in done.stdout
    assert not grafana.posts and grafana.refused == 0
