"""Fixtures of the traffic suite; the world itself is described in tests/support/traffic_world.py."""

import os

import pytest

from tests.support.traffic_world import LBS, build_world, normal_new_routers, remove_world

LAST = "test_pool_failures.py"


def pytest_collection_modifyitems(items):
    """test_pool_failures kills and slows the new routers: it runs last, so no test waits for a repair."""
    items.sort(key=lambda item: item.path.name == LAST)


@pytest.fixture(scope="session")
def world():
    build_world()
    yield LBS
    if not os.environ.get("MSGROUTE_T4_KEEP"):
        remove_world()


@pytest.fixture(autouse=True)
def _new_routers(request):
    if request.path.name != LAST:
        normal_new_routers()
