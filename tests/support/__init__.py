"""Test support shared by the suites under tests/ and the benchmarks under bench/.

Imported as ``tests.support`` with the repository root on ``sys.path`` (tests/conftest.py puts it there for
pytest; benchmarks run as ``python -m bench.<name>.<script>`` from the root). Importing it also makes the
checkout importable as ``ansible_collections.msgroute.rollout``, through the ``collections/`` symlink that
ansible.cfg gives Ansible, so plugins are imported exactly as Ansible loads them.

- ``net``: free loopback ports, waiting for an HTTP endpoint.
- ``metrics``: Prometheus text exposition, parsed by prometheus_client.
- ``monitoring``: queries of role monitoring's Prometheus, with inventories/local's generated password.
- ``playbooks``: ansible-playbook run like a user runs it, its recap and gate lines.
- ``images``: the local Debian base image the images role built (fails, never skips, when missing).
- ``rollout``: the real rollout on inventories/local (tests/integration, tests/e2e, bench/rollback).
- ``traffic_world``: the traffic suite's world (tests/traffic, bench/traffic).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "collections"
BIN = Path(sys.executable).parent
RESULTS = ROOT / "results"
LOGS = RESULTS / "test-logs"

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
