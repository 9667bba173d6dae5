"""Load generator: argument bounds, message realism, and real runs against ``python -m router_app``."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router_app.loadgen import (
    MAX_DURATION_S,
    Load,
    Schedule,
    Tally,
    Target,
    build_message,
    parse_args,
    parse_target,
    percentile,
    run,
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
    assert plan.retry is False


def test_retry_is_a_switch() -> None:
    plan = parse_args(["--target", "http://127.0.0.1:1", "--rate", "5", "--duration", "1", "--retry"])
    assert plan.retry is True


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
    assert [n for n, _ in slots] == list(range(1, 101))
    times = [due for _, due in slots]
    assert times[0] == 100.0 and times[1] == pytest.approx(100.02) and times[-1] < 102.0


def test_schedule_stops_at_total_and_without_rate_hands_out_now() -> None:
    schedule = Schedule(start=time.monotonic(), rate=0, duration=60.0, total=3)
    slots = [schedule.next_slot() for _ in range(4)]
    assert [slot[0] for slot in slots[:3] if slot] == [1, 2, 3] and slots[3] is None
    assert all(slot[1] <= time.monotonic() for slot in slots[:3] if slot)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50.0, 95.0, 100.0)
    # rank ceil(0.95 * 30) = 29; rounding 28.5 half to even would have given the 28th value
    assert percentile([float(v) for v in range(1, 31)], 95) == 29.0
    assert percentile([], 50) is None


@pytest.mark.parametrize("q", [0, 1, 50, 95, 99, 100])
def test_percentile_of_one_sample_is_that_sample(q: float) -> None:
    assert percentile([3.0], q) == 3.0


def test_percentile_edges() -> None:
    values = [1.0, 2.0, 2.0, 2.0, 9.0]
    assert percentile(values, 0) == 1.0  # the minimum
    assert percentile(values, 100) == 9.0  # the maximum, however few samples
    assert percentile(values, 21) == 2.0 and percentile(values, 80) == 2.0  # ties share their ranks
    assert percentile(values, 80.1) == 9.0
    for q in (-1, 100.5):
        with pytest.raises(ValueError):
            percentile(values, q)


def test_tally_counts_add_up() -> None:
    tally = Tally()
    tally.add_response(200, "1.0", None, 1.0)
    tally.add_response(503, "1.0", "new", 2.0)
    tally.add_response(200, None, "legacy", 3.0, cookie="u=1")
    tally.errors["ConnectionRefusedError"] += 2
    snap = tally.snapshot()
    assert snap["requests"] == 5 and snap["responses"] == 3 and snap["connection_errors"] == 2
    assert snap["failed"] == tally.failed == 3  # two errors and the 503
    assert snap["by_status"] == {"200": 2, "503": 1}
    assert snap["by_version"] == {"1.0": 2, "<none>": 1}
    assert snap["by_pool"] == {"legacy": 1, "new": 1}
    assert snap["latency_ms"] == {"p50": 2.0, "p95": 3.0, "p99": 3.0, "max": 3.0}
    assert tally.share("new") == 50.0 and Tally().share("new") == 0.0
    assert tally.cookie_pools == [("u=1", "legacy")]


def test_tallies_fold_into_one() -> None:
    first, second = Tally(), Tally()
    first.add_response(200, "a", "new", 1.0)
    second.add_response(200, "a", "legacy", 5.0)
    second.errors["TimeoutError"] += 1
    second.closed_before_response, second.retried = 2, 1
    first.add(second)
    assert (first.requests, first.failed, first.closed_before_response, first.retried) == (3, 1, 2, 1)
    assert first.by_pool == {"new": 1, "legacy": 1} and first.percentile(100) == 5.0


@pytest.mark.parametrize(
    "options",
    [{"rate": -1}, {"duration": 0}, {"duration": MAX_DURATION_S + 1}, {"concurrency": 0}, {"total": 0}],
)
def test_load_refuses_unbounded_or_nonsense_options(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Load("http://127.0.0.1:1", **options)


class OneAnswerPerConnection:
    """A loopback HTTP/1.1 server that answers the first request of each connection (keep-alive) and then,
    like a server that closed the idle connection or reloaded, reads the next one and closes without a byte.
    With ``answers=0`` it closes every connection on its first request."""

    def __init__(self, answers: int = 1) -> None:
        self.answers = answers
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            for answered in range(self.answers + 1):
                headers = {}
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                if not headers:
                    return
                reader.read(int(headers.get("content-length", 0)))
                if answered == self.answers:
                    return  # closed before any byte of the answer
                body = b'{"ok":true}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Router-Version: stub\r\n"
                    b"X-Msgroute-Pool: new\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def closing_server() -> Iterator[Callable[..., OneAnswerPerConnection]]:
    servers: list[OneAnswerPerConnection] = []

    def start(answers: int = 1) -> OneAnswerPerConnection:
        servers.append(OneAnswerPerConnection(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_never_retry_counts_a_close_before_the_answer_on_a_reused_connection(closing_server) -> None:
    server = closing_server()
    tally = run(server.url, total=6, concurrency=1, cookie=lambda n: f"user={n}")
    # answered, closed, answered (new connection), closed, ...
    assert (tally.responses, tally.requests, tally.failed) == (3, 6, 3)
    assert tally.errors == {"RemoteDisconnected": 3}
    assert (tally.closed_before_response, tally.retried) == (3, 0)
    assert tally.by_pool == {"new": 3} and tally.by_version == {"stub": 3}
    assert [cookie for cookie, _ in tally.cookie_pools] == ["user=1", "user=3", "user=5"]


def test_retry_resends_once_on_a_new_connection(closing_server) -> None:
    server = closing_server()
    tally = run(server.url, total=6, concurrency=1, retry=True)
    assert (tally.responses, tally.requests, tally.failed) == (6, 6, 0)
    assert (tally.closed_before_response, tally.retried) == (5, 5)
    assert server.connections == 6


def test_retry_never_resends_on_a_fresh_connection(closing_server) -> None:
    server = closing_server(answers=0)
    tally = run(server.url, total=3, concurrency=1, retry=True)
    assert (tally.responses, tally.errors) == (0, {"RemoteDisconnected": 3})
    assert (tally.closed_before_response, tally.retried) == (0, 0)


def test_stop_ends_an_open_run_early(closing_server) -> None:
    server = closing_server(answers=1000)
    with Load(server.url, rate=200, concurrency=2) as load:
        time.sleep(0.3)
    tally = load.tally
    assert 0 < tally.requests < 200 and tally.failed == 0


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
    assert summary["event"] == "summary" and summary["stopped_early"] is False and summary["retry"] is False
    assert [r["event"] for r in reports] == ["report"] * len(reports) and len(reports) >= 1
    assert json.loads(out.read_text()) == summary

    n = summary["requests"]
    assert 100 <= n <= 200  # 200 scheduled; a slow machine may fall behind, never ahead
    assert summary["connection_errors"] == summary["closed_before_response"] == summary["retried"] == 0
    assert summary["responses"] == n == sum(summary["by_status"].values())
    assert summary["failed"] == n // 4
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
