"""Fixtures of the traffic suite; the world itself is described in traffic_world.py."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from traffic_world import normal_new_routers, world  # noqa: F401  (world: the session fixture)

LAST = "test_pool_failures.py"


def pytest_collection_modifyitems(items):
    """test_pool_failures kills and slows the new routers: it runs last, so no test waits for a repair."""
    items.sort(key=lambda item: item.path.name == LAST)


@pytest.fixture(autouse=True)
def _new_routers(request):
    if request.path.name != LAST:
        normal_new_routers()
