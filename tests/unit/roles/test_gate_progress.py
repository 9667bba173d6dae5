"""The gate's progress, run by ansible-playbook on localhost (the real analyse tasks of role rollout_step)
against a fake Prometheus on 127.0.0.1: each measurement is a line of the playbook's output as it is taken,
before the one verdict; a measurement past the failure limit ends the run there."""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.plugins.module_utils.gate_samples import prometheus_answer
from tests.unit.roles.lb_site import PARTIAL_GATE, play

MIB = 1024 * 1024
MEASURE = re.compile(
    r"MEASURE partial 50% (\d)/4 (\S+Z) p95 ([\d.]+) ms, success ([\d.]+) %, memory ([\d.]+) MB, "
    r"(\d+) requests: (\w+)"
)


class FakePrometheus(http.server.ThreadingHTTPServer):
    """Answers the gate's instant queries: the p95 of each measurement in turn (seconds), the rest fixed."""

    def __init__(self, p95s: list[float]) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.p95s = p95s
        self.asked: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def value(self, query: str) -> str:
        self.asked.append(query)
        if query.startswith("histogram_quantile"):
            taken = sum(1 for q in self.asked if q.startswith("histogram_quantile"))
            return str(self.p95s[min(taken, len(self.p95s)) - 1])
        for prefix, value in (("(sum(rate", "0.9995"), ("sum(increase", "4200")):
            if query.startswith(prefix):
                return value
        if query.startswith("max(process_resident"):
            return str(61 * MIB)
        if query.startswith("max(msgroute_breaker"):
            return "0"
        raise AssertionError(f"unexpected query {query}")


class _Answer(http.server.BaseHTTPRequestHandler):
    server: FakePrometheus

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["query"][0]
        body = json.dumps(prometheus_answer(self.server.value(query))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def prometheus(request: pytest.FixtureRequest) -> Iterator[FakePrometheus]:
    server = FakePrometheus(request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def settings(prometheus: FakePrometheus) -> list[str]:
    extra = {
        "rollout_analysis_provider": "prometheus",
        "rollout_prometheus_url": prometheus.url,
        "rollout_analysis": {"partial": {"interval": 1, "count": 4}},
        "rollout_judge": {"partial": {"enabled": False}},
    }
    return ["-e", json.dumps(extra)]


@pytest.mark.parametrize("prometheus", [[0.031]], indirect=True)
def test_a_gate_with_count_4_shows_4_measurement_lines_before_its_verdict(
    site: Path, prometheus: FakePrometheus
) -> None:
    (site / "gate.yml").write_text(PARTIAL_GATE)
    done = play(site, str(site / "gate.yml"), *settings(prometheus))
    assert done.returncode == 0, done.stdout[-4000:]
    out = " ".join(done.stdout.split())
    verdict = out.index("GATE partial 50%: Successful - Successful: 4 of 4 measurements successful")
    lines = MEASURE.findall(out[:verdict])
    assert [int(line[0]) for line in lines] == [1, 2, 3, 4], done.stdout[-4000:]
    figures = {
        (p95, success, memory, requests, said) for _k, _t, p95, success, memory, requests, said in lines
    }
    assert figures == {("31", "99.95", "61", "4200", "Successful")}
    moments = [line[1] for line in lines]
    assert sorted(moments) == moments
    so_far = "failed 0 (failure_limit 0), inconclusive 0 (inconclusive_limit 0), errors in a row 0"
    assert out.count(so_far) == 4
    assert out[:verdict].count(": Running") == 3 and "Successful, 4 of 4 measurements successful" in out
    assert not MEASURE.findall(out[verdict:]), "no measurement after the verdict"
    assert sum(1 for q in prometheus.asked if q.startswith("histogram_quantile")) == 4


@pytest.mark.parametrize("prometheus", [[0.031, 0.083]], indirect=True)
def test_a_measurement_past_the_failure_limit_ends_the_run_there(
    site: Path, prometheus: FakePrometheus
) -> None:
    (site / "gate.yml").write_text(PARTIAL_GATE)
    done = play(site, str(site / "gate.yml"), *settings(prometheus))
    assert done.returncode != 0
    out = " ".join(done.stdout.split())
    lines = MEASURE.findall(out)
    assert [(k, said) for k, _t, _p, _s, _m, _r, said in lines] == [("1", "Successful"), ("2", "Failed")]
    assert "Failed (p95 latency 83 ms > threshold 48 ms); so far failed 1 (failure_limit 0)" in out
    decision = "Failed: failed (1) > failure_limit (0); measurement 2/2: p95 latency 83 ms > threshold 48 ms"
    assert decision in out
    assert sum(1 for q in prometheus.asked if q.startswith("histogram_quantile")) == 2, "no third measurement"
