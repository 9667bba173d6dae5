"""The collection as shipped: what `ansible-galaxy collection build` puts in the artifact, the collections it
declares, and the changelog generated from changelogs/changelog.yaml.

The artifact is built from a copy of the checkout's files (tracked and new, as git lists them) with the caches
and leftovers a working tree collects planted in it, so galaxy.yml's `build_ignore` is tested against them
whatever state this checkout is in.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import ansible_collections
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# What a collection user runs or reads. router_app/ is there because roles/images builds the router image
# from <collection>/router_app at run time (its Dockerfile, .dockerignore, requirements.txt and the package).
SHIPPED_TREES = ("meta", "plugins", "roles", "playbooks", "docs", "router_app")
SHIPPED_FILES = (
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "CHANGELOG.md",
    "changelogs/changelog.yaml",
    "inventories/staging/hosts.yml",
    "inventories/staging/group_vars/all.yml",
    "inventories/production/hosts.yml",
    "inventories/production/group_vars/all.yml",
)
TOP_LEVEL = {
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "CHANGELOG.md",
    "changelogs",
    "docs",
    "inventories",
    "meta",
    "playbooks",
    "plugins",
    "roles",
    "router_app",
}
# Checkout-only content, some of it planted in the copy the artifact is built from.
LEFT_OUT_PREFIXES = (
    "tests/",
    "molecule/",
    "bench/",
    "collections/",
    "results/",
    ".ci/",
    "inventories/local/",
    "changelogs/fragments/",
)
LEFT_OUT_FILES = (
    "Makefile",
    "pyproject.toml",
    "ansible.cfg",
    "requirements.txt",
    ".gitignore",
    ".ansible-lint",
)
PLANTED = (
    ".pytest_cache/v/cache/nodeids",
    ".ruff_cache/0.17.6/123",
    ".ansible/collections/x",
    ".hypothesis/examples/x",
    ".venv/pyvenv.cfg",
    "router_app/__pycache__/engine.cpython-311.pyc",
    "router_app/.pytest_cache/v/cache/nodeids",
    "plugins/module_utils/__pycache__/analysis.cpython-311.pyc",
    "plugins/modules/.mypy_cache/x.json",
    "roles/traffic/.ruff_cache/x",
    "results/rollback_decision.json",
    "changelogs/.plugin-cache.yaml",
    "molecule/router/.molecule/state.yml",
    "msgroute-rollout-0.0.9.tar.gz",
)


def checkout_files() -> list[str]:
    """Tracked and new (not ignored) files of the checkout, as git lists them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(path for path in listed.split("\0") if path and os.path.lexists(ROOT / path))


def copy_checkout(files: list[str], target: Path) -> None:
    for relative in files:
        source, copy = ROOT / relative, target / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(source.readlink())
        else:
            shutil.copy2(source, copy)


def plant(target: Path, paths: tuple[str, ...]) -> None:
    for relative in paths:
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left behind by a tool\n")


def artifact_members(artifact: Path) -> set[str]:
    with tarfile.open(artifact) as tar:
        return {member.name for member in tar.getmembers() if not member.isdir()}


def collection_versions(galaxy: dict, requirements: dict, execution_environment: dict) -> dict[str, dict]:
    """Each file's declared collections as {name: version}."""
    return {
        "galaxy.yml": dict(galaxy["dependencies"]),
        "collections/requirements.yml": {c["name"]: c["version"] for c in requirements["collections"]},
        "meta/execution-environment.yml": {
            c["name"]: c["version"] for c in execution_environment["dependencies"]["galaxy"]["collections"]
        },
    }


def installed_collections() -> set[str]:
    """Every collection importable here (the venv's `ansible` package bundles them), this one excluded."""
    found = {
        f"{namespace.name}.{collection.name}"
        for base in map(Path, ansible_collections.__path__)
        for namespace in base.iterdir()
        if namespace.is_dir()
        for collection in namespace.iterdir()
        if collection.is_dir()
    }
    return found - {"msgroute.rollout"}


def collections_referenced(texts: list[str], candidates: set[str]) -> set[str]:
    """The candidates named as `namespace.collection.<plugin>` (a module, filter or lookup FQCN) in texts."""
    return {
        name for name in candidates if any(re.search(rf"\b{re.escape(name)}\.\w", text) for text in texts)
    }


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    source = tmp_path_factory.mktemp("checkout") / "rollout"
    copy_checkout(checkout_files(), source)
    plant(source, PLANTED)
    output = tmp_path_factory.mktemp("artifact")
    built = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(output), str(source)],
        cwd=output,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (artifact,) = output.glob("msgroute-rollout-*.tar.gz")
    return artifact_members(artifact)


def test_the_artifact_has_every_file_the_roles_playbooks_and_plugins_use(members: set[str]) -> None:
    expected = {
        path
        for path in checkout_files()
        if path.startswith(tuple(f"{tree}/" for tree in SHIPPED_TREES)) and "__pycache__" not in path
    }
    assert "router_app/Dockerfile" in expected
    assert "router_app/.dockerignore" in expected
    assert "roles/images/files/nginx/Dockerfile" in expected
    assert expected - members == set()
    assert set(SHIPPED_FILES) - members == set()


def test_the_artifact_has_nothing_from_outside_the_collection(members: set[str]) -> None:
    assert {member.split("/")[0] for member in members} <= TOP_LEVEL
    assert {m for m in members if m.startswith(LEFT_OUT_PREFIXES)} == set()
    assert members.isdisjoint(LEFT_OUT_FILES)


def test_the_artifact_leaves_out_caches_and_leftovers(members: set[str]) -> None:
    assert members.isdisjoint(PLANTED)
    assert {m for m in members if "__pycache__" in m or m.endswith((".pyc", ".tar.gz"))} == set()
    dotted = {m for m in members if any(part.startswith(".") for part in m.split("/"))}
    assert dotted == {"router_app/.dockerignore"}


def test_galaxy_requirements_and_execution_environment_declare_the_same_collections() -> None:
    declared = collection_versions(
        read_yaml(ROOT / "galaxy.yml"),
        read_yaml(ROOT / "collections/requirements.yml"),
        read_yaml(ROOT / "meta/execution-environment.yml"),
    )
    assert declared["galaxy.yml"] == declared["collections/requirements.yml"]
    assert declared["galaxy.yml"] == declared["meta/execution-environment.yml"]


def test_the_declared_collections_are_those_the_collection_uses() -> None:
    shipped = [
        path.read_text()
        for tree in ("roles", "playbooks", "plugins")
        for path in (ROOT / tree).rglob("*")
        if path.suffix in {".yml", ".yaml", ".py", ".j2"} and "__pycache__" not in path.parts
    ]
    used = collections_referenced(shipped, installed_collections())
    assert used == set(read_yaml(ROOT / "galaxy.yml")["dependencies"])


def test_collections_referenced_finds_fully_qualified_names_only() -> None:
    texts = ["- ansible.posix.synchronize:\n    src: x", "{{ x | community.general.dict_kv('a') }}"]
    candidates = {"ansible.posix", "community.general", "community.docker"}
    assert collections_referenced(texts, candidates) == {"ansible.posix", "community.general"}
    assert collections_referenced(["see community.docker for details"], candidates) == set()


def test_changelog_md_is_generated_from_changelog_yaml(tmp_path: Path) -> None:
    collection = tmp_path / "ansible_collections/msgroute/rollout"
    (collection / "changelogs/fragments").mkdir(parents=True)
    for relative in ("galaxy.yml", "changelogs/config.yaml", "changelogs/changelog.yaml"):
        shutil.copy2(ROOT / relative, collection / relative)
    generated = subprocess.run(
        [str(BIN / "antsibull-changelog"), "generate"],
        cwd=collection,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    assert (collection / "CHANGELOG.md").read_text() == (ROOT / "CHANGELOG.md").read_text()
