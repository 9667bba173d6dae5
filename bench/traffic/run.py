"""Traffic benchmark (not a timed test): prints its figures and writes results/bench-traffic.json.

1. Primary latency with 0 % vs 10 % shadow: the same fixed-rate load of kept-alive clients through one lb,
   runs interleaved (0, 10, 0, 10, ...); the p95 ratio of each pair and their median (target <= 1.10). The
   median of the pairs is the headline because one pair hit by another job's burst skews a merged figure.
2. Time for one weight change to take effect on every lb (target <= 1 s): from the start of the switch to the
   last lb's `changed_at` (the moment its nginx applied the value) - for the runtime switch alone (both lbs
   in parallel, as the role's switch task runs on every lb host at once) and for a whole role run.
3. What a reload costs kept-alive clients that do not retry, next to the same number of runtime weight
   changes: 32 connections at 400 req/s, 10 reloads vs 10 weight changes; and the same reloads for clients
   that resend a request their reused connection lost before any answer byte (router_app.loadgen's retry).
4. Each membership transition of a rollout (new pool appearing, scaling 2 -> 3 -> 1 -> 2, legacy retired and
   brought back) by the role under that load, next to one reload in the same state: failed requests each.
5. The time from a member added at run time to its first answer.

Runs in the traffic suite's world (tests/traffic: msgroute-t4-* containers, ports 28xxx); do not run it while
that suite runs. Usage, from the repository root: python -m bench.traffic.run [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

from router_app.loadgen import Tally
from tests.support import RESULTS
from tests.support import traffic_world as world
from tests.support.metrics import scrape

LB1, LBS = world.LB1, world.LBS


def shadow_overhead(rate: float, seconds: float, pairs: int) -> dict:
    runs: dict[int, list[Tally]] = {0: [], 10: []}
    for shadow in (0, 10) * pairs:
        LB1.set_runtime(0, shadow)
        time.sleep(1)
        running = LB1.load(16, rate=rate).start()
        time.sleep(seconds)
        runs[shadow].append(running.stop())
    LB1.set_runtime(0, 0)
    figures = {}
    for shadow, tallies in runs.items():
        merged = Tally()
        for tally in tallies:
            merged.add(tally)
        figures[shadow] = merged.snapshot()
    pair_ratios = [round(runs[10][i].percentile(95) / runs[0][i].percentile(95), 3) for i in range(pairs)]
    return {
        "rate_per_s": rate,
        "seconds_per_run": seconds,
        "pairs": pairs,
        "p95_ratio_per_pair": pair_ratios,
        "shadow_0": figures[0],
        "shadow_10": figures[10],
        "p95_ratio_all_runs": round(figures[10]["latency_ms"]["p95"] / figures[0]["latency_ms"]["p95"], 3),
        "p95_ratio_median_pair": statistics.median(pair_ratios),
    }


def switch_all(new_weight: int) -> float:
    """Set the weight on every lb at once (one thread each, like Ansible's forks); returns the start time."""
    started = time.time()
    threads = [threading.Thread(target=lb.set_runtime, args=(new_weight, 0)) for lb in LBS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return started


def effect_seconds(started: float, new_weight: int) -> tuple[float, float]:
    states = [lb.runtime() for lb in LBS]
    assert all(state["new_weight"] == new_weight for state in states), states
    applied = [state["changed_at"] for state in states]
    return max(applied) - started, max(applied) - min(applied)


def weight_change_effect(repeats: int) -> dict:
    runtime, spread = [], []
    for i in range(repeats):
        weight = 10 + 10 * (i % 8)
        started = switch_all(weight)
        took, skew = effect_seconds(started, weight)
        runtime.append(took)
        spread.append(skew)
    role = []
    for weight in (30, 60, 20):
        started = time.time()
        world.applied(weight=weight, shadow=0)
        role.append(effect_seconds(started, weight)[0])
    world.applied(weight=0, shadow=0)
    return {
        "runtime_switch_s": {"median": round(statistics.median(runtime), 3), "max": round(max(runtime), 3)},
        "lb_spread_s": {"median": round(statistics.median(spread), 3), "max": round(max(spread), 3)},
        "role_run_s": {"median": round(statistics.median(role), 2), "max": round(max(role), 2)},
        "repeats": repeats,
    }


def reloads_vs_runtime(changes: int = 10) -> dict:
    results = {}
    for how in ("reload", "runtime", "reload, clients retry"):
        running = LB1.load(32, rate=400, retry=how.endswith("retry")).start()
        time.sleep(1)
        for i in range(changes):
            if how.startswith("reload"):
                world.docker("exec", LB1.container, "nginx", "-c", str(LB1.conf), "-s", "reload")
            else:
                LB1.set_runtime(10 + 5 * i)
            time.sleep(0.8)
        time.sleep(1)
        tally = running.stop()
        results[how] = {
            "requests": tally.requests,
            "failed": tally.failed,
            "errors": dict(tally.errors),
            "closed_before_response": tally.closed_before_response,
            "retried": tally.retried,
        }
    LB1.set_runtime(0)
    return results


def under_load(change) -> dict:
    """What one change costs 32 kept-alive clients of LB1 that never retry (400 req/s)."""
    running = LB1.load(32, rate=400).start()
    time.sleep(1)
    change()
    time.sleep(1)
    tally = running.stop()
    return {"requests": tally.requests, "failed": tally.failed, "errors": dict(tally.errors)}


def reload_lb1() -> None:
    world.docker("exec", LB1.container, "nginx", "-c", str(LB1.conf), "-s", "reload")


def transitions() -> dict:
    """Each membership transition of a rollout, by the role (run time), next to one reload in the same state
    (what the same transition cost when membership was structural: one reload)."""
    third = world.NEW[0].removesuffix("-1") + "-3"
    steps = [
        ("new pool appears (shadow's first step)", {"weight": 0, "shadow": 10}, {"traffic_new_hosts": []}),
        ("new pool scaled 2 -> 3 at 50 %", {"weight": 50, "router_instances": 3}, None),
        ("new pool scaled 3 -> 1 at 50 %", {"weight": 50, "router_instances": 1}, None),
        ("new pool scaled 1 -> 2 at 50 %", {"weight": 50}, None),
        ("legacy retired (full)", {"weight": 100, "legacy": False}, None),
        ("legacy brought back (rollback from full)", {"weight": 0}, None),
    ]
    results = {}
    world.backends("--limit", "routers", "-e", '{"router_instances": 3}')
    try:
        for name, variables, before in steps:
            if before is not None:
                world.applied(weight=0, shadow=0, **before)
            loaded = LB1.runtime()["loaded_at"]
            runtime = under_load(lambda variables=variables: world.applied(**variables))
            reloaded = LB1.runtime()["loaded_at"] != loaded
            results[name] = {"run_time": runtime, "reloaded": reloaded, "one_reload": under_load(reload_lb1)}
    finally:
        world.docker("rm", "-f", third, check=False)
        world.applied(weight=0, shadow=0)
    return results


def answered(port: int) -> float:
    """Live requests a router answered (its own counter)."""
    return scrape(f"http://127.0.0.1:{port}/metrics").value("msgroute_requests_total", mirrored="false")


def first_answer_from_a_new_member(repeats: int = 5) -> dict:
    """Seconds from the runtime PUT adding a member (load running at 50 %) to its first answer, seen in the
    member's own request counter (polled every 5 ms)."""
    third = world.NEW[0].removesuffix("-1") + "-3"
    world.backends("--limit", "routers", "-e", '{"router_instances": 3}')
    client = world.Client(LB1.container, 8081)
    seconds = []
    try:
        world.applied(weight=50, shadow=0)
        base = client.get()
        members = {pool: [{k: m[k] for k in ("name", "address", "peer")} for m in base["members"][pool]]
                   for pool in ("legacy", "new")}  # fmt: skip
        # Container addresses are IPv4 already: the peer is the address.
        address = world.docker(
            "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{world.NETWORK}").IPAddress}}}}', third
        ).stdout.strip()
        port = world.PORT_BASE + 83
        peer = f"{address}:8080"
        added = {**members, "new": [*members["new"], {"name": third, "address": peer, "peer": peer}]}
        running = LB1.load(16, rate=400).start()
        try:
            for _ in range(repeats):
                before = answered(port)
                started = time.monotonic()
                client.put(world.Values(50, 0), added)
                while answered(port) <= before:
                    if time.monotonic() - started > 10:
                        raise RuntimeError(f"{third} got no request within 10 s of joining the pool")
                    time.sleep(0.005)
                seconds.append(time.monotonic() - started)
                client.put(world.Values(50, 0), members)
                time.sleep(0.5)
        finally:
            tally = running.stop()
    finally:
        world.docker("rm", "-f", third, check=False)
        world.applied(weight=0, shadow=0)
    return {
        "seconds": {"median": round(statistics.median(seconds), 3), "max": round(max(seconds), 3)},
        "repeats": repeats,
        "failed_meanwhile": tally.failed,
        "requests_meanwhile": tally.requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the containers running afterwards")
    parser.add_argument("--rate", type=float, default=200, help="req/s of the shadow overhead runs")
    parser.add_argument("--seconds", type=float, default=10, help="length of each shadow overhead run")
    parser.add_argument("--pairs", type=int, default=5, help="0%%/10%% run pairs")
    args = parser.parse_args()
    world.build_world()
    try:
        figures = {
            "shadow_overhead": shadow_overhead(args.rate, args.seconds, args.pairs),
            "weight_change": weight_change_effect(repeats=10),
            "reload_vs_runtime": reloads_vs_runtime(),
            "transitions": transitions(),
            "first_answer_from_a_new_member": first_answer_from_a_new_member(),
            "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        }
    finally:
        if not args.keep:
            world.remove_world()
    overhead, change, reloads = (
        figures["shadow_overhead"],
        figures["weight_change"],
        figures["reload_vs_runtime"],
    )
    print("primary latency, 0% vs 10% shadow ({} req/s, 16 kept-alive connections, {} x {} s each)".format(
        overhead["rate_per_s"], overhead["pairs"], overhead["seconds_per_run"]))  # fmt: skip
    for shadow in (0, 10):
        f = overhead[f"shadow_{shadow}"]
        lat = f["latency_ms"]
        print(f"  shadow {shadow:>2}%: p50 {lat['p50']} ms  p95 {lat['p95']} ms  p99 {lat['p99']} ms  "
              f"failed {f['failed']} of {f['requests']}")  # fmt: skip
    print(
        f"  p95 ratio (10% / 0%), median of the pairs: {overhead['p95_ratio_median_pair']}  (target <= 1.10)"
    )
    print(f"    per pair {overhead['p95_ratio_per_pair']}; all runs merged {overhead['p95_ratio_all_runs']}")
    print("one weight change, until every lb (2) applies it:")
    switch, spread = change["runtime_switch_s"], change["lb_spread_s"]
    print(f"  runtime switch: median {switch['median']} s, max {switch['max']} s"
          f" (lb spread max {spread['max']} s; target <= 1 s)")  # fmt: skip
    print(f"  whole role run (ansible-playbook, both lbs): median {change['role_run_s']['median']} s")
    print("kept-alive clients (32 connections, 400 req/s), 10 changes each; they never retry unless said:")
    for how, r in reloads.items():
        print(f"  {how:>21}: {r['failed']} failed of {r['requests']}, {r['closed_before_response']} closed "
              f"before an answer, {r['retried']} resent {r['errors'] or ''}")  # fmt: skip
    print("each rollout transition under the same load (never retrying): by the role, vs one reload there:")
    for name, r in figures["transitions"].items():
        how = "reloaded!" if r["reloaded"] else "run time"
        print(f"  {name:>42}: {r['run_time']['failed']} failed of {r['run_time']['requests']} ({how}); "
              f"one reload: {r['one_reload']['failed']} failed of {r['one_reload']['requests']}")  # fmt: skip
    first = figures["first_answer_from_a_new_member"]
    print(f"a member added at run time (50 %, 400 req/s) answers its first request after median "
          f"{first['seconds']['median']} s, max {first['seconds']['max']} s; {first['failed_meanwhile']} "
          f"of {first['requests_meanwhile']} requests failed meanwhile")  # fmt: skip
    out = RESULTS / "bench-traffic.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
