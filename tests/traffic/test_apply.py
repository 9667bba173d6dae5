"""The role's contract: check mode shows the diff; bad input or a config nginx rejects changes nothing."""

from __future__ import annotations

import re

import pytest

from tests.support.traffic_world import (
    INVENTORY,
    LB1,
    LBS,
    LEGACY,
    NEW,
    SUITE,
    applied,
    apply,
    playbook,
    runtime_line,
)

LEGACY_ONLY = {"new_weight": 0, "shadow_percent": 0, "legacy_enabled": True}


@pytest.fixture(scope="module")
def steady(world):
    # The world starts on legacy only; a run before this module may have left something else.
    if any(lb.recorded() != LEGACY_ONLY for lb in LBS):
        applied(weight=0, shadow=0)
    return {lb.host: (lb.conf.read_text(), lb.runtime(), lb.recorded()) for lb in LBS}


def unchanged(before) -> None:
    for lb in LBS:
        conf, runtime, recorded = before[lb.host]
        assert lb.conf.read_text() == conf, lb.host
        assert lb.runtime()["new_weight"] == runtime["new_weight"], lb.host
        assert lb.runtime()["loaded_at"] == runtime["loaded_at"], lb.host
        assert lb.recorded() == recorded, lb.host
        assert lb.health() == 200
        assert not list(lb.config_dir.glob("*.staged")), lb.host


def test_check_diff_shows_the_change_and_changes_nothing(steady):
    run = apply("--check", "--diff", weight=35, shadow=5)
    assert run.returncode == 0, run.output[-3000:]
    assert "-# msgroute.rollout traffic: new pool 0%, shadow 0%" in run.output
    assert "+# msgroute.rollout traffic: new pool 35%, shadow 5%" in run.output
    runtime = runtime_line("\n".join(line for line in run.output.splitlines() if line.startswith("+")))
    assert (runtime["new_weight"], runtime["shadow_percent"]) == (35, 5)
    assert sorted(m["name"] for m in runtime["members"]["new"]) == sorted(NEW)
    assert "+new_weight: 35" in run.output  # the runtime switch's own diff, with each pool's members
    # (the members come right after the values, so the diff's context shows legacy's)
    for name in LEGACY:
        member = re.compile(rf"^ +- {re.escape(name)} \d+\.\d+\.\d+\.\d+:8080$", re.M)
        assert member.search(run.output), run.output[-3000:]
    unchanged(steady)


def test_a_second_run_changes_nothing(steady):
    again = apply(weight=0, shadow=0)
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed("t4-lb1") == 0 and again.changed("t4-lb2") == 0, again.output[-3000:]
    unchanged(steady)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"weight": 120}, "Refusing traffic settings new_weight=120"),
        ({"weight": 50, "legacy": False}, "Refusing traffic settings new_weight=50"),
        ({"weight": 0, "traffic_split_by": "sideways"}, "traffic_split_by"),
        ({"weight": 0, "traffic_split_by": "cookie", "traffic_split_key": "a;b"}, "split_key='a;b'"),
    ],
)
def test_bad_values_stop_the_play_before_anything_changes(steady, variables, message):
    run = apply(**variables)
    assert run.returncode != 0
    assert message in run.output, run.output[-3000:]
    unchanged(steady)


def test_a_config_nginx_rejects_never_goes_live(steady):
    run = apply(weight=40, traffic_proxy_read_timeout="10x")
    assert run.returncode != 0
    assert "the new configuration was rejected and not applied" in run.output
    assert '[emerg] 1#1: "proxy_read_timeout" directive invalid value' in run.output
    unchanged(steady)


def test_one_lb_rejecting_its_config_stops_every_lb(steady):
    run = playbook(
        "apply.yml", "-e", '{"weight": 40}', inventories=(INVENTORY, SUITE / "inventory_lb2_invalid.yml")
    )
    assert run.returncode != 0
    assert '[emerg] 1#1: "proxy_read_timeout" directive invalid value' in run.output
    assert "lb host(s) t4-lb2 failed before reaching 'staged'" in run.output
    unchanged(steady)
    assert LB1.runtime()["new_weight"] == 0
