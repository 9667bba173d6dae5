"""The playbooks work from the installed collection (`ansible-playbook msgroute.rollout.<name>`), not only
from a checkout: build the collection artifact, install it into an empty collections path, run it there."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support import BIN, ROOT
from tests.support.playbooks import RECAP


def run(command: list[str], cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("installed")
    # No ansible.cfg from the checkout: only the installed copy and the venv's bundled collections resolve.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(work / "collections")
    built = run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(work), str(ROOT)], work, env
    )
    assert built.returncode == 0, built.stderr
    (artifact,) = work.glob("msgroute-rollout-*.tar.gz")
    installed = run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--no-deps",
            "-p",
            str(work / "collections"),
            str(artifact),
        ],
        work,
        env,
    )
    assert installed.returncode == 0, installed.stderr
    assert (work / "collections/ansible_collections/msgroute/rollout/playbooks/shadow.yml").is_file()
    return work, env


def test_prepare_runs_from_the_installed_collection_and_is_idempotent(installed):
    work, env = installed
    command = [
        str(BIN / "ansible-playbook"),
        "-i",
        str(ROOT / "inventories/local"),
        "msgroute.rollout.prepare",
    ]
    first = run(command, work, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    second = run(command, work, env)
    assert second.returncode == 0, second.stdout[-3000:]
    (recap,) = RECAP.findall(second.stdout)
    assert recap[0] == "localhost"
    assert int(recap[2]) == 0, second.stdout[-3000:]


def test_the_artifact_leaves_out_checkout_only_files(installed):
    work, _ = installed
    root = work / "collections/ansible_collections/msgroute/rollout"
    assert (root / "router_app/Dockerfile").is_file()
    assert not (root / "collections/ansible_collections").exists()
    assert not (root / "results").exists()
