"""Load generator: argument bounds, message realism, and real runs against ``python -m router_app``."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router_app.loadgen import (
    MAX_DURATION_S,
    Schedule,
    Tally,
    Target,
    build_message,
    parse_args,
    parse_target,
    percentile,
)
from router_app.models import RouteRequest


def test_parse_target() -> None:
    assert parse_target("http://127.0.0.1:8080") == Target("http", "127.0.0.1", 8080, "/v1/route")
    assert parse_target("http://localhost/router/") == Target("http", "localhost", 80, "/router/v1/route")
    assert parse_target("https://[::1]:8443").port == 8443


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8080", "ftp://host", "http://", "http://h/?q=1", "http://u:p@h/", "http://h:99999"]
)
def test_parse_target_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        parse_target(url)


@pytest.mark.parametrize(
    "args",
    [
        ["--duration", str(MAX_DURATION_S + 1)],
        ["--duration", "0"],
        ["--rate", "0"],
        ["--rate", "-5"],
        ["--concurrency", "0"],
        ["--duration", "nan"],
        ["--target", "file:///etc/passwd"],
    ],
)
def test_bad_arguments_are_refused(args: list[str]) -> None:
    base = {"--target": "http://127.0.0.1:1", "--rate": "1", "--duration": "1"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(SystemExit) as caught:
        parse_args([item for pair in base.items() for item in pair])
    assert caught.value.code == 2


def test_one_hour_is_allowed() -> None:
    plan = parse_args(["--target", "http://127.0.0.1:1", "--rate", "50", "--duration", "3600"])
    assert (plan.rate, plan.duration, plan.concurrency, plan.report_every) == (50.0, 3600.0, 8, 5.0)


def test_messages_are_valid_unique_and_mixed() -> None:
    rng = random.Random(7)
    messages = [build_message(rng, f"id-{i}") for i in range(500)]
    parsed = [RouteRequest.model_validate_json(json.dumps(m)) for m in messages]
    assert len({m.id for m in parsed}) == 500
    types = {m.type for m in parsed}
    assert {"alert", "telemetry"} <= types and len(types) >= 5
    assert any(m.priority is not None for m in parsed) and any(m.priority is None for m in parsed)


def test_schedule_hands_out_rate_times_duration_slots() -> None:
    schedule = Schedule(start=100.0, rate=50.0, duration=2.0)
    slots = []
    while (slot := schedule.next_slot()) is not None:
        slots.append(slot)
    assert len(slots) == 100
    assert slots[0] == 100.0 and slots[1] == pytest.approx(100.02) and slots[-1] < 102.0


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50.0, 95.0, 100.0)
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 50) is None


def test_tally_counts_add_up() -> None:
    tally = Tally()
    tally.add_response(200, "1.0", None, 1.0)
    tally.add_response(503, "1.0", "new", 2.0)
    tally.add_response(200, None, "legacy", 3.0)
    tally.errors["ConnectionRefusedError"] += 2
    snap = tally.snapshot()
    assert snap["requests"] == 5 and snap["responses"] == 3 and snap["connection_errors"] == 2
    assert snap["by_status"] == {"200": 2, "503": 1}
    assert snap["by_version"] == {"1.0": 2, "<none>": 1}
    assert snap["by_pool"] == {"legacy": 1, "new": 1}
    assert snap["latency_ms"]["p50"] == 2.0


def run_loadgen(root: Path, *args: str, timeout: float = 30) -> tuple[int, list[dict[str, Any]]]:
    result = subprocess.run(
        [sys.executable, "-m", "router_app.loadgen", *args],
        cwd=root,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def route_counts(url: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "msgroute_requests")
    return {(s.labels["status_class"], s.labels["mirrored"]): s.value for s in family.samples}


def test_against_real_router_counts_add_up(
    start_router: Callable[..., Any], root: Path, tmp_path: Path
) -> None:
    router = start_router(ROUTER_VERSION="5.0.1", ROUTER_FAULT_INJECTION="on", ROUTER_FAULT_ERROR_RATE="0.25")
    out = tmp_path / "summary.json"
    code, lines = run_loadgen(
        root, "--target", router.url, "--rate", "100", "--duration", "2", "--concurrency", "4",
        "--report-every", "1", "--json-out", str(out), "--seed", "3",
    )  # fmt: skip
    assert code == 0
    reports, summary = lines[:-1], lines[-1]
    assert summary["event"] == "summary" and summary["stopped_early"] is False
    assert [r["event"] for r in reports] == ["report"] * len(reports) and len(reports) >= 1
    assert json.loads(out.read_text()) == summary

    n = summary["requests"]
    assert 100 <= n <= 200  # 200 scheduled; a slow machine may fall behind, never ahead
    assert summary["connection_errors"] == 0
    assert summary["responses"] == n == sum(summary["by_status"].values())
    assert summary["by_status"] == {"200": n - n // 4, "503": n // 4}  # the server's exact fault pattern
    assert summary["by_version"] == {"5.0.1": n}
    assert summary["by_pool"] == {}
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"]
    assert sum(r["requests"] for r in reports) <= n

    counts = route_counts(router.url)
    assert counts[("2xx", "false")] == n - n // 4 and counts[("5xx", "false")] == n // 4


def test_unreachable_target_counts_connection_errors(root: Path, closed_port: int) -> None:
    code, lines = run_loadgen(
        root,
        "--target",
        f"http://127.0.0.1:{closed_port}",
        "--rate",
        "20",
        "--duration",
        "1",
        "--report-every",
        "0",
    )
    assert code == 0
    (summary,) = lines
    assert summary["requests"] == summary["connection_errors"] == 20
    assert summary["responses"] == 0 and summary["by_status"] == {}
    assert set(summary["errors_by_kind"]) == {"ConnectionRefusedError"}


def test_sigterm_stops_with_summary(start_router: Callable[..., Any], root: Path) -> None:
    router = start_router()
    args = ["--target", router.url, "--rate", "20", "--duration", "60", "--report-every", "0.5"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "router_app.loadgen", *args], cwd=root, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    assert first["event"] == "report"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert time.monotonic() - started < 10
    summary = json.loads(rest.splitlines()[-1])
    assert summary["event"] == "summary" and summary["stopped_early"] is True
    assert 0 < summary["requests"] < 20 * 60
    assert summary["requests"] == summary["responses"] + summary["connection_errors"]
