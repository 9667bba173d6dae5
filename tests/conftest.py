"""Make the checkout importable as ``ansible_collections.msgroute.rollout``.

``collections/ansible_collections/msgroute/rollout`` is a symlink to the repository root, the same path
``ansible.cfg`` gives Ansible, so unit tests import plugins exactly as Ansible loads them.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / "collections"
for path in (str(COLLECTIONS), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)
