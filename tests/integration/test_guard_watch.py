"""What else the always-on guard watches, all parts real: Prometheus, Alertmanager, nginx, routers, a sink.

test_guard_always_on covers added latency and one failing message class. Here, each after a step passed and
its playbook ended (nothing of ours running):

- a circuit breaker held open: the new routers deliver to a sink that starts answering 503;
- a slow memory leak: memory stays under the limit, but its trend crosses it within the horizon;
- a breach inside full.yml's post-promotion window: legacy takes every request back, none lost, and the run
  stops before legacy goes;
- the guard's chain down: Alertmanager stopped, then Prometheus: status.yml says the guard is blind, and the
  in-play gates still decide alone (a breach fails its step; no data never promotes).

Each scenario starts from a new shadow (which acknowledges the previous guard rollback).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.metrics import scrape
from tests.support.monitoring import LOCAL_ALERTMANAGER, LOCAL_PROMETHEUS, ready
from tests.support.playbooks import PlaybookRun
from tests.support.processes import answers, docker
from tests.support.rollout import (
    DATA_DIR,
    NEW_ROUTER_PORTS,
    all_legacy,
    fresh_start,
    guard_record,
    lb_weights,
    load,
    run_playbook,
    set_faults,
    wait_for,
)

STATE = DATA_DIR / "lb" / "state.json"
ADMIN_TOKEN = secrets.token_urlsafe(24)
TOKEN = ["-e", f"router_admin_token={ADMIN_TOKEN}"]
SINK = "msgroute-guard-sink"
SINK_CONTROL = "http://127.0.0.1:19201"
# Bounded waits for behaviour (local rules fire after seconds; Alertmanager waits 1 s): generous, never timed.
GUARD_WAIT = 120


def released(*extra: str, weight: int = 50) -> None:
    """A new shadow, then partial at ``weight`` passed and its playbook ended; no guard record stands."""
    shadow = run_playbook("shadow.yml", *TOKEN, *extra)
    assert shadow.returncode == 0, shadow.output[-4000:]
    partial = run_playbook("partial.yml", "-e", f"rollout_weight={weight}", *TOKEN, *extra)
    assert partial.returncode == 0, partial.output[-4000:]
    assert lb_weights() == (weight, 0)
    assert guard_record() is None


@pytest.fixture(scope="module", autouse=True)
def world() -> Iterator[None]:
    fresh_start()
    yield
    # Whatever a scenario stopped or started, the next module finds the rehearsal's world.
    docker("rm", "-f", SINK, check=False)
    docker("start", "msgroute-prometheus", "msgroute-alertmanager", check=False)
    wait_for(lambda: ready(LOCAL_PROMETHEUS) and ready(LOCAL_ALERTMANAGER), 60, "ready")


# ------------------------------------------------------------------------------ a breaker held open


@pytest.fixture(scope="module")
def breaker_open() -> dict[str, Any]:
    image = (
        f"msgroute/router:{json.loads(STATE.read_text())['version']}"
        if STATE.exists()
        else "msgroute/router:2.0.0"
    )
    docker("rm", "-f", SINK, check=False)
    docker(
        "run", "-d", "--name", SINK, "--network", "msgroute", "-p", "127.0.0.1:19201:9001",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", image,
        "python", "-m", "router_app.sink", "--host", "0.0.0.0", "--port", "9001", "--name", "sink",
    )  # fmt: skip
    wait_for(lambda: answers(f"{SINK_CONTROL}/health"), 30, "the sink")
    deliver = f"http://{SINK}:9001/deliver"
    destinations = json.dumps({"router_env": {"ROUTER_DESTINATIONS": f"dest-a={deliver},dest-b={deliver}"}})
    with load(rate=100) as seen:
        released("-e", destinations)
        delivered = requests.get(f"{SINK_CONTROL}/stats", timeout=5).json()
        # The sink refuses every delivery from now on: each destination's breaker opens and stays open.
        requests.post(f"{SINK_CONTROL}/control", json={"fail_status": 503}, timeout=5).raise_for_status()
        record = wait_for(guard_record, GUARD_WAIT, "a guard rollback after the breakers opened")
        wait_for(lambda: lb_weights() == (0, 0), 10, "weight and shadow 0 on the lb")
        time.sleep(2)
    docker("rm", "-f", SINK, check=False)
    return {"record": record, "clients": seen.summary, "delivered": delivered}


def test_a_breaker_held_open_puts_traffic_back_on_legacy(breaker_open):
    assert breaker_open["delivered"], "the new routers delivered to the sink while the step ran"
    record = breaker_open["record"]
    assert record["alert"] == "MsgrouteBreakersAboveTrigger", record
    assert record["phase"] == "partial" and record["weights_before"]["new_weight"] == 50
    all_legacy("after-breaker")


def test_clients_lost_nothing_to_the_open_breakers(breaker_open):
    # While every breaker is open the new routers answer 503, and nginx sends the request to legacy instead.
    clients = breaker_open["clients"]
    assert clients["responses"] > 500
    assert all(status.startswith("2") for status in clients["by_status"]), clients["by_status"]
    assert clients.get("errors", 0) == 0, clients


# ------------------------------------------------------------------------------ a slow memory leak


def new_pool_memory_mb() -> float:
    return (
        max(
            scrape(f"http://127.0.0.1:{p}/metrics").value("process_resident_memory_bytes")
            for p in NEW_ROUTER_PORTS
        )
        / 2**20
    )


@pytest.fixture(scope="module")
def leaked(breaker_open) -> dict[str, Any]:
    with load(rate=100):
        released()
        # Memory grows per request up to the fault's 64 MB of ballast: the new routers stay under the 128 MB
        # trigger, but the trend over 30 s crosses it within the 60 s horizon.
        set_faults(ADMIN_TOKEN, memory_growth_kb=64)
        record = wait_for(guard_record, GUARD_WAIT, "a guard rollback on the memory trend")
        peak = new_pool_memory_mb()
        wait_for(lambda: lb_weights() == (0, 0), 10, "weight and shadow 0 on the lb")
    set_faults(ADMIN_TOKEN, memory_growth_kb=0)
    return {"record": record, "peak_mb": peak}


def test_a_slow_leak_under_the_limit_is_caught_by_its_trend(leaked):
    record = leaked["record"]
    assert record["alert"] == "MsgrouteMemoryLeak", record
    assert leaked["peak_mb"] < 128, "the leak was caught before memory crossed the limit"
    all_legacy("after-leak")


# ------------------------------------------------------------------------------ full.yml's window


@pytest.fixture(scope="module")
def window_breach(leaked) -> dict[str, Any]:
    """partial 75 passed, then full.yml keeps legacy 180 s after its bake; +100 ms once the bake passed."""
    result: dict[str, PlaybookRun] = {}

    def bake_passed() -> bool:
        steps = json.loads(STATE.read_text()).get("steps", [])
        return bool(steps) and steps[-1].get("phase") == "full" and steps[-1].get("verdict") == "Successful"

    with load(rate=100) as seen:
        released(weight=75)
        worker = threading.Thread(
            target=lambda: result.update(
                run=run_playbook("full.yml", "-e", "rollout_legacy_window=180", *TOKEN)
            )
        )
        worker.start()
        wait_for(lambda: bake_passed() or not worker.is_alive(), 600, "full's bake passed")
        assert bake_passed(), result["run"].output[-4000:]
        assert lb_weights()[0] == 100
        set_faults(ADMIN_TOKEN, latency_ms=100)
        record = wait_for(guard_record, GUARD_WAIT, "a guard rollback in the post-promotion window")
        wait_for(lambda: lb_weights() == (0, 0), 10, "weight and shadow 0 on the lb")
        worker.join(timeout=300)
        time.sleep(2)
    set_faults(ADMIN_TOKEN, latency_ms=0)
    return {"record": record, "run": result["run"], "clients": seen.summary}


def test_a_breach_in_the_window_brings_legacy_back(window_breach):
    record = window_breach["record"]
    assert record["phase"] == "full" and record["weights_before"]["new_weight"] == 100
    all_legacy("after-window")


def test_the_window_lost_no_request(window_breach):
    clients = window_breach["clients"]
    assert clients["responses"] > 500
    assert set(clients["by_status"]) == {"200"}, clients["by_status"]
    assert clients.get("errors", 0) == 0, clients


def test_full_stops_before_legacy_goes(window_breach):
    run = window_breach["run"]
    assert run.returncode != 0
    assert "STOPPED full before legacy was taken out: rolled back by guard: " in run.flat
    assert docker("inspect", "-f", "{{.State.Running}}", "msgroute-legacy-1").stdout.strip() == "true"


# ------------------------------------------------------------------------------ the chain down


@pytest.fixture(scope="module")
def shadowing() -> None:
    """A new shadow (the mirror sends the new pool traffic); Alertmanager then stopped."""
    with load(rate=100):
        shadow = run_playbook("shadow.yml", *TOKEN)
        assert shadow.returncode == 0, shadow.output[-4000:]
    docker("stop", "msgroute-alertmanager")


def test_status_says_the_guard_is_blind_without_alertmanager(shadowing):
    with load(rate=50):
        run = run_playbook("status.yml")
    assert run.returncode != 0
    out = run.flat
    assert "guard blind: Alertmanager on localhost:19093 does not answer" in out
    assert "guard blind on localhost while the new pool has traffic" in out


def test_without_alertmanager_the_in_play_gate_still_fails_a_breach(shadowing):
    # +100 ms deployed with the live routers (a run-time fault would not outlive their redeployment).
    fault = json.dumps({"router_fault_injection": {"latency_ms": 100}})
    with load(rate=100):
        run = run_playbook("partial.yml", "-e", "rollout_weight=25", "-e", fault)
    assert run.returncode != 0
    assert "ROLLBACK partial at 25%: traffic is back on legacy" in run.flat
    assert "p95 latency" in run.flat and "> threshold 48 ms" in run.flat
    assert lb_weights()[0] == 0
    assert guard_record() is None, "the gate decided; the guard heard nothing"


def test_without_prometheus_no_data_never_promotes(shadowing):
    docker("stop", "msgroute-prometheus")
    with load(rate=100):
        # The failed step above was a rollback; forced past the phase order, the step itself must refuse.
        run = run_playbook("partial.yml", "-e", "rollout_weight=25", "-e", "rollout_force=true", *TOKEN)
        status = run_playbook("status.yml")
    assert run.returncode != 0
    assert "GATE partial 25%: Successful" not in " ".join(run.gate_lines())
    assert lb_weights() == (0, 0)
    # The new pool has no traffic now: the blind chain is reported, and nothing is left for it to protect.
    assert "guard blind: Prometheus on localhost:19090 does not answer" in status.flat
