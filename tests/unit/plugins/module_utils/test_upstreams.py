"""nginx upstream entries: published addresses, or running containers' addresses on the lb network."""

from __future__ import annotations

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.upstreams import (
    UpstreamError,
    network_addresses,
    upstreams,
)

MEMBERS = [
    {"name": "r-1", "upstream": "r-1:8080"},
    {"name": "r-2", "upstream": "r-2:8080"},
]


def network(containers: dict) -> dict:
    return {"exists": True, "network": {"Containers": containers}}


def test_published_uses_the_inventory_address_of_every_member():
    members = [{"name": "r-1", "upstream": "10.0.0.5:18081"}]
    assert upstreams(members) == [{"name": "r-1", "address": "10.0.0.5:18081"}]


def test_network_uses_each_running_container_address():
    info = network(
        {
            "abc": {"Name": "r-2", "IPv4Address": "172.20.0.3/16"},
            "def": {"Name": "lb", "IPv4Address": "172.20.0.9/16"},
            "ghi": {"Name": "r-1", "IPv4Address": "172.20.0.7/16"},
        }
    )
    assert upstreams(MEMBERS, info, "network") == [
        {"name": "r-1", "address": "172.20.0.7:8080"},
        {"name": "r-2", "address": "172.20.0.3:8080"},
    ]


def test_network_leaves_out_containers_that_do_not_run():
    info = network({"abc": {"Name": "r-2", "IPv4Address": "172.20.0.3/16"}})
    assert upstreams(MEMBERS, info, "network") == [{"name": "r-2", "address": "172.20.0.3:8080"}]


@pytest.mark.parametrize("info", [None, {"exists": False}, {"exists": True, "network": {"Containers": None}}])
def test_no_network_means_no_member(info):
    assert upstreams(MEMBERS, info, "network") == []
    assert network_addresses(info) == {}


def test_endpoints_without_an_address_are_ignored():
    assert network_addresses(network({"abc": {"Name": "r-1", "IPv4Address": ""}})) == {}


def test_unknown_via_is_refused():
    with pytest.raises(UpstreamError, match="via"):
        upstreams(MEMBERS, None, "dns")
