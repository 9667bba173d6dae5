"""The latency histograms must have every phase's p95 threshold as a bucket edge.

``histogram_quantile`` interpolates inside a bucket; only at an edge is "p95 <= threshold" exact. The
routers (router_app/metrics.py) and the lb (roles/traffic/files/msgroute_traffic.lua) expose the
histograms the gate reads; the thresholds come from the one module that owns them.
"""

import ast
import re
from pathlib import Path

from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import PHASE_DEFAULTS

ROOT = Path(__file__).resolve().parents[4]


def router_buckets() -> tuple[float, ...]:
    """ROUTE_DURATION_BUCKETS read from the source, without importing the service's metric registry."""
    tree = ast.parse((ROOT / "router_app" / "metrics.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ROUTE_DURATION_BUCKETS" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("ROUTE_DURATION_BUCKETS not found in router_app/metrics.py")


def lua_buckets() -> tuple[float, ...]:
    source = (ROOT / "roles" / "traffic" / "files" / "msgroute_traffic.lua").read_text()
    table = re.search(r"^local BUCKETS = \{(.*?)\}", source, re.MULTILINE | re.DOTALL)
    assert table, "local BUCKETS = {...} not found in msgroute_traffic.lua"
    return tuple(float(edge) for edge in re.findall(r"[0-9.]+(?:e-?[0-9]+)?", table.group(1)))


def threshold_edges() -> set[float]:
    return {t.max_p95_ms / 1000.0 for t in PHASE_DEFAULTS.values()}


def test_thresholds_are_the_design_figures() -> None:
    assert threshold_edges() == {0.045, 0.048, 0.05}


def test_router_buckets_contain_every_phase_threshold() -> None:
    assert threshold_edges() <= set(router_buckets())


def test_lb_buckets_contain_every_phase_threshold() -> None:
    assert threshold_edges() <= set(lua_buckets())


def test_router_and_lb_buckets_are_one_layout() -> None:
    router = router_buckets()
    assert router == lua_buckets()
    assert list(router) == sorted(set(router))
