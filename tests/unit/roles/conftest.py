"""The fixture of the playbook-level role tests: two lb hosts on localhost with a fake docker (lb_site.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.roles.lb_site import make_site


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Inventory (lb1, lb2 local; routers and legacy never contacted), fake docker, state directories."""
    return make_site(tmp_path)
