"""Time from breach onset to 0 % traffic on the new routers (issue 5's benchmark, not a test).

Runs on inventories/local after `make prepare`: shadow, then partial at 50 % with a long analysis
(interval 5 s). Once the step has been healthy for a while, fault injection is switched on in the new routers
at run time (their admin endpoint, enabled for this run with a random token) — that instant is the breach
onset. The script then watches nginx from a client's point of view and reports when every answer comes from
legacy again and when nginx's recorded weight is 0. Traffic: bounded synthetic load on loopback only.

    python -m bench.rollback.rollback_time [--trials N] [--latency-ms 100] [--json-out FILE]   # from the root
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import threading
import time
from pathlib import Path

import requests

from tests.support import BIN, RESULTS, ROOT
from tests.support.rollout import LB_URL, NEW_ROUTER_PORTS, fresh_start, load, run_playbook, traffic_state

INTERVAL_S = 5


def partial_with_admin(token: str) -> subprocess.Popen:
    extra = {
        "router_admin_token": token,
        "rollout_analysis": {"partial": {"interval": INTERVAL_S, "count": 24, "window": f"{INTERVAL_S}s"}},
    }
    command = [str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/partial.yml"]
    command += ["-e", "rollout_weight=50", "-e", json.dumps(extra)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def breach(token: str, latency_ms: float) -> None:
    for port in NEW_ROUTER_PORTS:
        answer = requests.put(
            f"http://127.0.0.1:{port}/admin/faults",
            json={"enabled": True, "latency_ms": latency_ms},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        answer.raise_for_status()


def watch_clients(stop: threading.Event, seen: list[tuple[float, str]]) -> None:
    """One request every 20 ms through nginx; records which pool answered."""
    session = requests.Session()
    n = 0
    while not stop.is_set():
        n += 1
        body = {"id": f"bench-rollback-{time.time_ns()}-{n}", "source": "bench", "type": "telemetry"}
        try:
            pool = session.post(f"{LB_URL}/v1/route", json=body, timeout=5).headers.get(
                "X-Msgroute-Pool", "?"
            )
        except requests.RequestException:
            pool = "error"
        seen.append((time.monotonic(), pool))
        time.sleep(0.02)


def trial(latency_ms: float) -> dict:
    fresh_start()
    token = secrets.token_hex(16)
    with load(rate=100, max_seconds=600):
        shadow = run_playbook("shadow.yml")
        assert shadow.returncode == 0, shadow.output[-3000:]
        proc = partial_with_admin(token)
        assert wait_for(lambda: traffic_state()["new_weight"] == 50, 180), "weight 50 never took effect"
        time.sleep(2 * INTERVAL_S + 1)  # two healthy measurements first
        seen: list[tuple[float, str]] = []
        stop = threading.Event()
        watcher = threading.Thread(target=watch_clients, args=(stop, seen), daemon=True)
        watcher.start()
        onset = time.monotonic()
        breach(token, latency_ms)
        weight_zero = wait_for(lambda: traffic_state()["new_weight"] == 0, 120, step=0.05)
        recorded_at = time.monotonic()
        time.sleep(2)
        stop.set()
        watcher.join()
        proc.communicate(timeout=120)
    last_new = max((t for t, pool in seen if pool == "new"), default=onset)
    decision = json.loads((RESULTS / "rollback_decision.json").read_text())
    return {
        "reverted": weight_zero and proc.returncode != 0,
        "onset_to_last_new_answer_s": round(last_new - onset, 2),
        "onset_to_weight_zero_recorded_s": round(recorded_at - onset, 2),
        "client_errors_after_onset": sum(1 for _, pool in seen if pool == "error"),
        "gate_reason": decision.get("reason", ""),
        "measurements": len(decision.get("measurements", [])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1, choices=range(1, 6))
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    results = [trial(args.latency_ms) for _ in range(args.trials)]
    print(
        f"{'trial':>5} {'reverted':>8} {'last new answer (s)':>20} {'weight 0 (s)':>13} {'client errors':>14}"
    )
    for n, r in enumerate(results, 1):
        print(
            f"{n:>5} {r['reverted']!s:>8} {r['onset_to_last_new_answer_s']:>20} "
            f"{r['onset_to_weight_zero_recorded_s']:>13} {r['client_errors_after_onset']:>14}"
        )
    worst = max(r["onset_to_last_new_answer_s"] for r in results)
    median = statistics.median(r["onset_to_last_new_answer_s"] for r in results)
    print(f"breach onset -> 0 % on the new routers: median {median} s, worst {worst} s (target <= 20 s)")
    print(f"gate said: {results[-1]['gate_reason']}")
    if args.json_out:
        args.json_out.write_text(json.dumps({"interval_s": INTERVAL_S, "trials": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
