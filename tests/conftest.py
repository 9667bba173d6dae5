"""Make the checkout importable: ``tests.support``, ``router_app`` and the collection.

The repository root goes on ``sys.path``; importing ``tests.support`` adds ``collections/``, whose
``ansible_collections/msgroute/rollout`` is a symlink to the root (the path ``ansible.cfg`` gives Ansible),
so unit tests import plugins exactly as Ansible loads them.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Imported for its effect: it puts collections/ on sys.path.
import tests.support  # noqa: F401  # pylint: disable=unused-import
