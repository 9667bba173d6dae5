"""Breach onset -> 0 % on the new pool with no playbook running: the always-on guard (issue 9's benchmark).

Runs on inventories/local after `make prepare` (scrape and rule evaluation every 1 s, rate window 5 s,
`for` 5 s, Alertmanager group_wait 1 s): shadow, then partial at 50 %, which passes and ends. Then +N ms are
switched on in the new routers at run time (their admin endpoint, enabled for this run with a random token) -
the breach onset - and the script watches, with no ansible-playbook running, for each part of the path:

- detection: onset -> the recorded p95 of the new pool is first above the rollback trigger (rate window),
- for:       -> the alert MsgrouteLatencyAboveTrigger is firing (its `for`, plus evaluation ticks),
- delivery:  -> the guard's record on the lb (Prometheus -> Alertmanager, group_wait, the webhook),
- switch:    -> the lb's weight metric reads 0 (the guard's run-time change),

and prints them with the total. Prometheus' own series give the first two (query_range, 1 s resolution); the
record's time the third; polling the lb every 0.1 s the last. Traffic: bounded synthetic load on loopback.

    python -m bench.guard.run [--trials N] [--latency-ms 100] [--json-out FILE]   # from the root
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import requests

from tests.support import RESULTS
from tests.support.metrics import scrape
from tests.support.monitoring import LOCAL_PROMETHEUS, local_auth
from tests.support.rollout import NEW_ROUTER_PORTS, fresh_start, guard_record, load, run_playbook

LB_METRICS = "http://127.0.0.1:9145/metrics"
P95 = 'pool:msgroute_request_duration_seconds:p95_rate5s{pool="new"}'
ALERT = "MsgrouteLatencyAboveTrigger"
TRIGGER_S = 0.065


def set_latency(token: str, latency_ms: float) -> None:
    for port in NEW_ROUTER_PORTS:
        requests.put(
            f"http://127.0.0.1:{port}/admin/faults",
            json={"enabled": latency_ms > 0, "latency_ms": latency_ms},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        ).raise_for_status()


def lb_weight() -> float:
    return scrape(LB_METRICS).value("msgroute_lb_new_weight")


def first_time(query: str, start: float, end: float, above: float | None = None) -> float | None:
    """The first sample time of ``query`` in [start, end] (above ``above`` when given), 1 s resolution."""
    answer = requests.get(
        f"{LOCAL_PROMETHEUS}/api/v1/query_range",
        params={"query": query, "start": start, "end": end, "step": 1},
        auth=local_auth(),
        timeout=10,
    )
    answer.raise_for_status()
    times = [
        float(t)
        for series in answer.json()["data"]["result"]
        for t, value in series["values"]
        if above is None or float(value) > above
    ]
    return min(times) if times else None


def one_trial(token: str, latency_ms: float, timeout: float = 180) -> dict[str, Any]:
    shadow = run_playbook("shadow.yml", "-e", f"router_admin_token={token}")
    if shadow.returncode:
        raise SystemExit(f"shadow.yml failed:\n{shadow.output[-3000:]}")
    partial = run_playbook("partial.yml", "-e", "rollout_weight=50", "-e", f"router_admin_token={token}")
    if partial.returncode:
        raise SystemExit(f"partial.yml failed:\n{partial.output[-3000:]}")
    time.sleep(5)  # a healthy stretch before the breach
    onset = time.time()
    set_latency(token, latency_ms)
    switched = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lb_weight() == 0:
            switched = time.time()
            break
        time.sleep(0.1)
    set_latency(token, 0)
    if switched is None:
        raise SystemExit(f"the guard did not switch within {timeout} s of the breach onset")
    record = guard_record() or {}
    time.sleep(3)  # let Prometheus have the last samples
    above = first_time(P95, onset - 1, switched + 1, above=TRIGGER_S)
    firing = first_time(f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}', onset - 1, switched + 1)
    recorded = float(record.get("at", 0)) or None
    parts = {
        "detection_s": above - onset if above else None,
        "for_s": firing - above if firing and above else None,
        "delivery_s": recorded - firing if recorded and firing else None,
        "switch_s": switched - recorded if recorded else None,
        "total_s": switched - onset,
    }
    return {"alert": record.get("alert"), "value": record.get("value"), **parts}


def describe(trial: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in trial.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1, choices=range(1, 6))
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--json-out", type=Path, default=RESULTS / "bench-guard.json")
    args = parser.parse_args()
    token = secrets.token_urlsafe(24)
    fresh_start()
    trials = []
    with load(rate=100, max_seconds=1800):
        for n in range(args.trials):
            trial = one_trial(token, args.latency_ms)
            trials.append(trial)
            print(f"trial {n + 1}: {describe(trial)}", flush=True)
    totals = [t["total_s"] for t in trials]
    median = statistics.median(totals)
    print(
        f"breach onset -> 0 % on the new pool, no playbook running: median {median:.1f} s "
        f"(max {max(totals):.1f} s) over {len(totals)} trial(s); target <= 15 s"
    )
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps({"trials": trials, "latency_ms": args.latency_ms}, indent=2) + "\n")


if __name__ == "__main__":
    main()
