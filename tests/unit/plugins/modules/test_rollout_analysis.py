"""rollout_analysis end to end through AnsibleModule: fake fetchers and sleep for the loop, and a real
local HTTP server for the collection's HTTP helper."""

from __future__ import annotations

import base64
import http.server
import itertools
import json
import math
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.msgroute.rollout.plugins.module_utils import _http as msg_http
from ansible_collections.msgroute.rollout.plugins.module_utils.analysis_run import AnalysisRun
from ansible_collections.msgroute.rollout.plugins.module_utils.judge import JudgeConfig
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import MetricNames
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import PHASES
from ansible_collections.msgroute.rollout.plugins.modules import rollout_analysis

from tests.unit.plugins.module_utils.gate_samples import prometheus_answer

BOUNDS = (0.005, 0.045, 0.048, 0.05, 0.1, math.inf)
MIB = 1024 * 1024


@dataclass
class Traffic:
    """Requests served in one interval: ``quick`` <= 5 ms, ``fast`` in (5, 45] ms, ``slow`` in (50, 100]."""

    fast: int
    slow: int = 0
    errors: int = 0  # of all requests, how many answered 5xx
    scrape_error: Exception | None = None  # traffic is served, but the scrape after it fails
    quick: int = 0


class Router:
    """Successive /metrics texts of one router: a baseline, then one per interval (or an exception)."""

    def __init__(self, intervals: list[Traffic | Exception], memory_mb: float = 40) -> None:
        self.buckets = dict.fromkeys(BOUNDS, 0)
        self.status = {"2xx": 0, "5xx": 0}
        self.memory_mb = memory_mb
        self.responses: list[str | Exception] = [self.text()]
        for interval in intervals:
            if isinstance(interval, Exception):
                self.responses.append(interval)
                continue
            for bound in BOUNDS:
                self.buckets[bound] += interval.quick
                self.buckets[bound] += interval.fast if bound >= 0.045 else 0
                self.buckets[bound] += interval.slow if bound >= 0.1 else 0
            total = interval.quick + interval.fast + interval.slow
            self.status["2xx"] += total - interval.errors
            self.status["5xx"] += interval.errors
            self.responses.append(interval.scrape_error or self.text())

    def text(self) -> str:
        lines = ["# TYPE msgroute_request_duration_seconds histogram"]
        for bound, count in self.buckets.items():
            le = "+Inf" if bound == math.inf else repr(bound)
            lines.append(f'msgroute_request_duration_seconds_bucket{{le="{le}"}} {count}')
        lines.append("# TYPE msgroute_requests_total counter")
        for status, count in self.status.items():
            lines.append(f'msgroute_requests_total{{mirrored="false",status_class="{status}"}} {count}')
        lines.append(f"process_resident_memory_bytes {self.memory_mb * MIB}")
        return "\n".join(lines) + "\n"


@dataclass
class Fleet:
    """A fake fetch_text over several routers; scraping more often than scripted is a test failure."""

    routers: dict[str, Router]
    calls: list[tuple[str, dict]] = field(default_factory=list)

    def fetch_text(
        self, url: str, timeout: float, headers: dict | None = None, validate_certs: bool = True
    ) -> str:
        self.calls.append((url, dict(headers or {})))
        responses = self.routers[url].responses
        assert responses, f"{url} scraped more often than the test scripted"
        response = responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


@dataclass
class Sleeper:
    slept: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def unreachable(url: str) -> msg_http.FetchError:
    return msg_http.FetchError(url, "[Errno 111] Connection refused")


def run_module(args: dict[str, Any], capsys: pytest.CaptureFixture, **deps: Any) -> tuple[int, dict]:
    deps.setdefault("sleep", Sleeper())
    deps.setdefault("clock", itertools.count(1_700_000_000, 5).__next__)
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        rollout_analysis.main(**deps)
    return exited.value.code, json.loads(capsys.readouterr().out)


R1, R2 = "http://10.0.0.11:8080/metrics", "http://10.0.0.12:8080/metrics"


def web_args(**extra: Any) -> dict[str, Any]:
    return {"phase": "partial", "targets": [R1, R2], **extra}


# --------------------------------------------------------------------------------------------- verdicts


def test_successful_run_reports_every_measurement(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet({R1: Router([Traffic(100)] * 3), R2: Router([Traffic(60)] * 3)})
    sleeper = Sleeper()
    rc, result = run_module(web_args(initial_delay=5), capsys, fetch_text=fleet.fetch_text, sleep=sleeper)
    assert rc == 0
    assert result["verdict"] == "Successful"
    assert result["changed"] is False
    assert [m["requests"] for m in result["measurements"]] == [160, 160, 160]
    assert result["thresholds"]["max_p95_ms"] == 48.0
    assert result["counts"]["successful"] == 3
    assert sleeper.slept == [5.0, 10.0, 10.0, 10.0]
    # Every scrape asks for the classic text format, which is what promtext parses.
    assert all(headers["Accept"].startswith("text/plain") for _url, headers in fleet.calls)


def test_failed_measurement_fails_the_task_naming_metric_threshold_value(
    capsys: pytest.CaptureFixture,
) -> None:
    # Interval 2: 20 of 100 requests on R1 take (50, 100] ms; pooled with R2's 100 fast ones the p95 is
    # in (0.05, 0.1]: rank 190 of 200, 180 below -> 0.05 + 0.05 * 10/20 = 75 ms.
    fleet = Fleet(
        {R1: Router([Traffic(100), Traffic(80, slow=20), Traffic(100)]), R2: Router([Traffic(100)] * 3)}
    )
    rc, result = run_module(web_args(), capsys, fetch_text=fleet.fetch_text)
    assert rc == 1
    assert result["failed"] is True
    assert result["verdict"] == "Failed"
    assert result["msg"] == (
        "Failed: failed (1) > failure_limit (0); measurement 2/2: p95 latency 75 ms > threshold 48 ms"
    )
    # Decided at measurement 2 of 3: the third interval is never waited for.
    assert len(result["measurements"]) == 2
    assert len(fleet.routers[R1].responses) == 1


def test_success_rate_breach_in_full_phase(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet({R1: Router([Traffic(1000, errors=10)])})
    rc, result = run_module(
        {"phase": "full", "targets": [R1], "count": 1}, capsys, fetch_text=fleet.fetch_text
    )
    assert rc == 1
    assert "success rate 99 % < threshold 99.13 %" in result["msg"]


def test_low_volume_is_inconclusive(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet({R1: Router([Traffic(5)] * 3)})
    rc, result = run_module({"phase": "shadow", "targets": [R1]}, capsys, fetch_text=fleet.fetch_text)
    assert rc == 1
    assert result["verdict"] == "Inconclusive"
    assert "request volume 5 < minimum 20 requests" in result["msg"]
    assert len(result["measurements"]) == 1


def test_unreachable_target_ends_in_error(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet({R1: Router([Traffic(100)] * 5), R2: Router([unreachable(R2)] * 5)})
    rc, result = run_module(web_args(), capsys, fetch_text=fleet.fetch_text)
    assert rc == 1
    assert result["verdict"] == "Error"
    assert result["counts"]["consecutive_errors"] == 5
    assert f"target {R2} unreachable: [Errno 111] Connection refused" in result["msg"]
    assert result["msg"].startswith("Error: consecutive errors (5) > consecutive_error_limit (4)")


def test_one_failed_scrape_is_retried_against_the_last_good_baseline(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet(
        {R1: Router([Traffic(100), Traffic(100, scrape_error=unreachable(R1)), Traffic(100), Traffic(100)])}
    )
    rc, result = run_module({"phase": "partial", "targets": [R1]}, capsys, fetch_text=fleet.fetch_text)
    assert rc == 0
    assert [m["verdict"] for m in result["measurements"]] == [
        "Successful",
        "Error",
        "Successful",
        "Successful",
    ]
    # The measurement after the failed scrape spans two intervals' requests.
    assert result["measurements"][2]["requests"] == 200


def test_consecutive_success_limit_stops_early(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet({R1: Router([Traffic(100)] * 2)})
    sleeper = Sleeper()
    rc, result = run_module(
        {"phase": "partial", "targets": [R1], "count": 10, "consecutive_success_limit": 2, "interval": 2.5},
        capsys,
        fetch_text=fleet.fetch_text,
        sleep=sleeper,
    )
    assert rc == 0
    assert len(result["measurements"]) == 2
    assert sleeper.slept == [0.0, 2.5, 2.5]


def test_a_real_run_says_it_measured(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet({R1: Router([Traffic(100)])})
    args = {"phase": "partial", "targets": [R1], "count": 1}
    rc, result = run_module(args, capsys, fetch_text=fleet.fetch_text)
    assert (rc, result["verdict"], result["measured"]) == (0, "Successful", True)


# ------------------------------------------------------------------------------------------ check mode


def test_check_mode_measures_nothing_and_says_what_it_would_measure(capsys: pytest.CaptureFixture) -> None:
    # A check-mode step never applied its weight: figures taken now would be of the traffic in force.
    fleet = Fleet({R1: Router([]), R2: Router([])})
    sleeper = Sleeper()
    rc, result = run_module(
        web_args(interval=5, count=3, initial_delay=2, failure_limit=1, _ansible_check_mode=True),
        capsys,
        fetch_text=fleet.fetch_text,
        sleep=sleeper,
    )
    assert (rc, result["changed"], result.get("failed", False)) == (0, False, False)
    assert (result["verdict"], result["measured"]) == ("NotMeasured", False)
    assert result["measurements"] == [] and set(result["counts"].values()) == {0}
    assert fleet.calls == [] and sleeper.slept == [], "nothing scraped, nothing waited for"
    assert result["message"] == (
        "would measure p95 latency, success rate and memory of the new pool (2 /metrics target(s)) every 5 s,"
        " 3 times after 2 s, against p95 <= 48 ms, success >= 99 %, memory <= 128 MB, at least 20 requests a"
        " measurement (failure_limit 1, inconclusive_limit 0, consecutive_error_limit 4); not measured"
    )
    assert result["thresholds"]["max_p95_ms"] == 48.0


def test_check_mode_with_prometheus_and_the_judge_names_both(capsys: pytest.CaptureFixture) -> None:
    prometheus = FakePrometheus({})
    rc, result = run_module(
        {
            "phase": "full",
            "provider": "prometheus",
            "prometheus_url": "http://prometheus:9090",
            "selector": {"pool": "new"},
            "baseline_selector": {"pool": "legacy"},
            "judge": {"baseline_period": "before"},
            "thresholds": {"max_memory_mb": None, "max_open_breakers": 0},
            "count": 1,
            "_ansible_check_mode": True,
        },
        capsys,
        fetch_json=prometheus.fetch_json,
    )
    assert (rc, result["verdict"]) == (0, "NotMeasured")
    assert prometheus.calls == []
    assert result["queries"]["requests"].startswith("sum(increase(msgroute_requests_total")
    message = result["message"]
    assert "p95 latency, success rate and open breakers of the new pool (Prometheus at" in message
    assert "http://prometheus:9090, window 60s) every 10 s, once, against p95 <= 50 ms" in message
    assert "memory" not in message and "open breakers <= 0" in message
    judge = "would judge it against legacy just before the run (Mann-Whitney, alpha 0.05, pass score 95)"
    assert f"; {judge}" in message
    assert "Successful" not in message and "Failed" not in message
    assert message.endswith("; not measured")


def test_check_mode_still_refuses_bad_settings(capsys: pytest.CaptureFixture) -> None:
    rc, result = run_module(
        web_args(count=1, failure_limit=2, _ansible_check_mode=True), capsys, fetch_text=Fleet({}).fetch_text
    )
    assert rc == 1
    assert result["msg"].startswith("count: 1 must be >= failure_limit + consecutive_success_limit")


# ---------------------------------------------------------------------------------------------- inputs


def test_bad_threshold_fails_before_measuring(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet({R1: Router([])})
    rc, result = run_module(web_args(thresholds={"max_p95": 10}), capsys, fetch_text=fleet.fetch_text)
    assert rc == 1
    assert result["msg"].startswith("thresholds.max_p95: unknown field")
    assert fleet.calls == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"count": 1, "failure_limit": 2},
            "count: 1 must be >= failure_limit + consecutive_success_limit (2 + 0)",
        ),
        (
            {"count": 3, "failure_limit": 2, "consecutive_success_limit": 2},
            "count: 3 must be >= failure_limit",
        ),
        ({"count": 1, "inconclusive_limit": 2}, "count: 1 must be >= inconclusive_limit (2)"),
        ({"interval": "nan"}, "interval: must be a number of seconds >= 0, got nan"),
        ({"window": "5 minutes"}, "window: '5 minutes' is not a PromQL duration"),
    ],
)
def test_settings_that_can_never_work_fail_before_measuring(
    args: dict, message: str, capsys: pytest.CaptureFixture
) -> None:
    fleet = Fleet({R1: Router([])})
    rc, result = run_module(web_args(**args), capsys, fetch_text=fleet.fetch_text)
    assert rc == 1
    assert result["msg"].startswith(message)
    assert fleet.calls == []


def test_web_provider_needs_targets(capsys: pytest.CaptureFixture) -> None:
    rc, result = run_module({"phase": "partial", "targets": []}, capsys)
    assert rc == 1
    assert result["msg"].startswith("targets:")


def test_missing_prometheus_client_is_reported(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollout_analysis, "HAS_PROMETHEUS_CLIENT", False)
    rc, result = run_module(web_args(), capsys)
    assert rc == 1
    assert "prometheus_client" in result["msg"]


def test_documented_defaults_match_the_code() -> None:
    doc = yaml.safe_load(rollout_analysis.DOCUMENTATION)["options"]
    spec = rollout_analysis.argument_spec()
    for name, option in spec.items():
        assert doc[name].get("default") == option.get("default"), name
        assert doc[name]["type"] == option["type"], name
    for group in ("metric_names", "judge"):
        for name, option in spec[group]["options"].items():
            assert doc[group]["suboptions"][name].get("default") == option.get("default"), (group, name)
            assert doc[group]["suboptions"][name]["type"] == option["type"], (group, name)
        assert set(doc[group]["suboptions"]) == set(spec[group]["options"]), group
    assert set(doc) == set(spec)
    assert spec["judge"]["options"]["alpha"]["default"] == JudgeConfig().alpha
    assert doc["phase"]["choices"] == list(PHASES)
    assert spec["count"]["default"] == AnalysisRun().count
    assert spec["metric_names"]["options"]["histogram"]["default"] == MetricNames().histogram
    yaml.safe_load(rollout_analysis.EXAMPLES)
    yaml.safe_load(rollout_analysis.RETURN)


# ------------------------------------------------------------------------------------ baseline judge

L1 = "http://10.0.0.21:8080/metrics"


def judged_args(**extra: Any) -> dict[str, Any]:
    return web_args(baseline_targets=[L1], **extra)


def test_judge_passes_a_release_that_behaves_like_legacy(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet(
        {
            R1: Router([Traffic(100, quick=300)] * 3),
            R2: Router([Traffic(100, quick=300)] * 3),
            L1: Router([Traffic(200, quick=600)] * 3),
        }
    )
    rc, result = run_module(judged_args(), capsys, fetch_text=fleet.fetch_text)
    assert rc == 0
    assert result["verdict"] == "Successful"
    judge = result["judge"]
    assert (judge["verdict"], judge["score"]) == ("Successful", 100)
    latency = judge["metrics"]["latency"]
    assert latency["classification"] == "Pass"
    assert latency["effect"] == 0.5
    # Every request of the run, summed over instances: 3 intervals x 2 routers x 400 vs 3 x 800.
    assert latency["samples"] == {"new": 2400, "legacy": 2400}
    assert judge["settings"] == JudgeConfig().to_dict()
    assert result["message"].startswith("Successful: 3 of 3 measurements")
    assert "; baseline judge Successful (score 100 >= pass_score 95)" in result["message"]
    # Legacy is scraped at the same moments as the new pool: right after it, every round.
    assert [url for url, _headers in fleet.calls] == [R1, R2, L1] * 4
    # ... so each measurement records what each pool served over the same interval: the traffic share.
    # 2 routers x 400 vs one legacy router x 800 a round: half the requests each.
    assert [m["pool_requests"] for m in result["measurements"]] == [{"new": 800, "legacy": 800}] * 3


def test_judge_fails_a_latency_regression_inside_the_sla(capsys: pytest.CaptureFixture) -> None:
    # Legacy answers 90 % in <= 5 ms, the new pool 90 % in (5, 45] ms: p95 45 ms is inside the 48 ms
    # budget, so every threshold measurement passes, yet the new engine is plainly slower.
    fleet = Fleet(
        {
            R1: Router([Traffic(180, quick=20)] * 3),
            R2: Router([Traffic(180, quick=20)] * 3),
            L1: Router([Traffic(20, quick=180)] * 3),
        }
    )
    rc, result = run_module(judged_args(), capsys, fetch_text=fleet.fetch_text)
    assert rc == 1
    assert [m["verdict"] for m in result["measurements"]] == ["Successful"] * 3
    assert result["verdict"] == "Failed"
    latency = result["judge"]["metrics"]["latency"]
    assert latency["classification"] == "High"
    assert latency["effect"] == 0.9  # 0.9 x 0.9 slower + half of the 2 x 0.9 x 0.1 ties
    assert result["msg"].startswith(
        "Failed: baseline judge Failed (score 50 < marginal_score 75): latency High: p="
    )
    assert "P(new slower than legacy)=0.900 > 0.55" in result["msg"]
    assert result["msg"].endswith(
        "; analysis Successful: 3 of 3 measurements successful; worst p95 latency 42.778 ms, "
        "worst success rate 100 %, peak memory 40 MB"
    )


def test_judge_fails_an_error_rate_regression_inside_the_sla(capsys: pytest.CaptureFixture) -> None:
    # 0.8 % errors passes the 99 % success threshold; legacy has none.
    fleet = Fleet(
        {
            R1: Router([Traffic(1000, errors=8)] * 3),
            R2: Router([Traffic(1000, errors=8)] * 3),
            L1: Router([Traffic(1000)] * 3),
        }
    )
    rc, result = run_module(judged_args(), capsys, fetch_text=fleet.fetch_text)
    assert rc == 1
    assert result["counts"]["successful"] == 3
    assert result["verdict"] == "Failed"
    errors = result["judge"]["metrics"]["error_rate"]
    assert errors["classification"] == "High"
    assert errors["p_value"] < 0.001
    assert "error rate High: p=" in result["msg"]
    assert "new 0.8 % vs legacy 0 % (+0.8 pp > 0.1 pp)" in result["msg"]


def test_unreachable_baseline_makes_the_judge_inconclusive_not_an_error(
    capsys: pytest.CaptureFixture,
) -> None:
    fleet = Fleet(
        {R1: Router([Traffic(100)] * 3), R2: Router([Traffic(100)] * 3), L1: Router([unreachable(L1)] * 4)}
    )
    fleet.routers[L1].responses.pop(0)  # not even the first scrape succeeds
    rc, result = run_module(judged_args(), capsys, fetch_text=fleet.fetch_text)
    assert rc == 1
    assert [m["verdict"] for m in result["measurements"]] == ["Successful"] * 3
    assert result["verdict"] == result["judge"]["verdict"] == "Inconclusive"
    assert result["judge"]["score"] is None
    assert result["msg"].startswith("Inconclusive: baseline judge Inconclusive: too few samples: latency:")
    assert f"legacy {L1}: unreachable: [Errno 111] Connection refused" in result["msg"]
    # Half the picture is no share: legacy's requests were never counted.
    assert [m["pool_requests"] for m in result["measurements"]] == [None] * 3


def test_judge_off_scrapes_no_baseline(capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet({R1: Router([Traffic(100)] * 3), R2: Router([Traffic(100)] * 3), L1: Router([])})
    rc, result = run_module(judged_args(judge={"enabled": False}), capsys, fetch_text=fleet.fetch_text)
    assert rc == 0
    assert "judge" not in result
    assert L1 not in {url for url, _headers in fleet.calls}
    assert [m["pool_requests"] for m in result["measurements"]] == [None] * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (web_args(judge={"enabled": True}), "baseline_targets: at least one legacy /metrics URL"),
        (judged_args(judge={"marginal_score": 99}), "judge.marginal_score: 99 is above pass_score 95"),
        (web_args(baseline_targets=[R1]), f"baseline_targets: {R1} is also in targets"),
        (
            {
                "phase": "full",
                "provider": "prometheus",
                "prometheus_url": "http://p:9090",
                "baseline_targets": [L1],
                "judge": {"enabled": True},
            },
            "baseline_selector: the legacy pool's label matchers (e.g. pool: legacy) are needed",
        ),
        (
            {
                "phase": "full",
                "provider": "prometheus",
                "prometheus_url": "http://p:9090",
                "baseline_selector": {"pool": "legacy"},
            },
            "selector: the judge needs the new pool's label matchers",
        ),
        (judged_args(judge={"baseline_period": "before"}), "judge.baseline_period: 'before' needs provider"),
    ],
)
def test_bad_judge_input_fails_before_measuring(
    capsys: pytest.CaptureFixture, args: dict[str, Any], message: str
) -> None:
    fleet = Fleet({R1: Router([]), R2: Router([]), L1: Router([])})
    rc, result = run_module(args, capsys, fetch_text=fleet.fetch_text)
    assert rc == 1
    assert result["msg"].startswith(message)
    assert fleet.calls == []


def test_missing_scipy_is_reported(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollout_analysis, "HAS_SCIPY", False)
    rc, result = run_module(judged_args(), capsys)
    assert rc == 1
    assert "scipy" in result["msg"]
    # Without a baseline the judge is off and scipy is not needed.
    fleet = Fleet({R1: Router([Traffic(100)] * 3), R2: Router([Traffic(100)] * 3)})
    assert run_module(web_args(), capsys, fetch_text=fleet.fetch_text)[0] == 0


# ------------------------------------------------------------------------------------------ prometheus


@dataclass
class FakePrometheus:
    values: dict[str, str | None]
    calls: list[tuple[str, str]] = field(default_factory=list)
    auths: list[tuple[str, str] | None] = field(default_factory=list)

    def fetch_json(
        self, url: str, params: dict, timeout: float, validate_certs: bool = True, auth: Any = None
    ) -> dict:
        self.calls.append((url, params["query"]))
        self.auths.append(auth)
        for prefix, value in self.values.items():
            if params["query"].startswith(prefix):
                return prometheus_answer(value)
        raise AssertionError(f"unexpected query {params['query']}")


PROM_VALUES = {
    "histogram_quantile": "0.031",
    "(sum(rate": "0.9995",
    "sum(increase": "4200",
    "max(process_resident": str(70 * MIB),
    "max(msgroute_breaker": "0",
}


def test_prometheus_provider(capsys: pytest.CaptureFixture) -> None:
    prometheus = FakePrometheus(dict(PROM_VALUES))
    rc, result = run_module(
        {
            "phase": "full",
            "provider": "prometheus",
            "prometheus_url": "http://prometheus:9090/",
            "selector": {"job": "router"},
            "count": 2,
        },
        capsys,
        fetch_json=prometheus.fetch_json,
    )
    assert rc == 0
    assert result["window"] == "60s"
    assert result["queries"]["requests"] == 'sum(increase(msgroute_requests_total{job="router"}[60s]))'
    assert result["measurements"][0]["p95_ms"] == 31
    assert {url for url, _query in prometheus.calls} == {"http://prometheus:9090/api/v1/query"}
    assert len(prometheus.calls) == 2 * 5


def test_prometheus_slow_p95_fails(capsys: pytest.CaptureFixture) -> None:
    prometheus = FakePrometheus({**PROM_VALUES, "histogram_quantile": "0.0623"})
    rc, result = run_module(
        {"phase": "full", "provider": "prometheus", "prometheus_url": "http://prometheus:9090"},
        capsys,
        fetch_json=prometheus.fetch_json,
    )
    assert rc == 1
    assert "p95 latency 62.3 ms > threshold 50 ms" in result["msg"]


def test_prometheus_credentials_go_with_every_query_and_never_into_the_result(
    capsys: pytest.CaptureFixture,
) -> None:
    prometheus = FakePrometheus(dict(PROM_VALUES))
    args = {
        "phase": "full",
        "provider": "prometheus",
        "prometheus_url": "http://p:9090",
        "prometheus_user": "msgroute",
        "prometheus_password": "s3cret-Pa55",
        "count": 1,
    }
    rc, result = run_module(args, capsys, fetch_json=prometheus.fetch_json)
    assert rc == 0
    assert prometheus.auths == [("msgroute", "s3cret-Pa55")] * len(prometheus.calls)
    assert "s3cret-Pa55" not in json.dumps(result)


def test_prometheus_user_without_password_is_refused(capsys: pytest.CaptureFixture) -> None:
    prometheus = FakePrometheus(dict(PROM_VALUES))
    args = {
        "phase": "full",
        "provider": "prometheus",
        "prometheus_url": "http://p:9090",
        "prometheus_user": "u",
    }
    rc, result = run_module(args, capsys, fetch_json=prometheus.fetch_json)
    assert rc == 1
    assert "prometheus_password" in result["msg"]
    assert prometheus.calls == []


def test_prometheus_query_failure_is_an_error_measurement(capsys: pytest.CaptureFixture) -> None:
    def failing(
        url: str, params: dict, timeout: float, validate_certs: bool = True, auth: Any = None
    ) -> dict:
        return {"status": "error", "errorType": "bad_data", "error": "unknown function"}

    rc, result = run_module(
        {
            "phase": "full",
            "provider": "prometheus",
            "prometheus_url": "http://p:9090",
            "consecutive_error_limit": 0,
        },
        capsys,
        fetch_json=failing,
    )
    assert rc == 1
    assert result["verdict"] == "Error"
    assert "p95 query failed: Prometheus query failed: bad_data: unknown function" in result["msg"]


# ----------------------------------------------------------------------- baseline judge, prometheus

# Cumulative bucket increases over the run, as `sum by (le) (increase(..._bucket[...]))` answers them.
LIKE_LEGACY = {"0.005": 900, "0.045": 1900, "0.048": 1950, "0.05": 1990, "0.1": 2000, "+Inf": 2000}
SLOWER = {"0.005": 100, "0.045": 1800, "0.048": 1950, "0.05": 1990, "0.1": 2000, "+Inf": 2000}


def labelled_answer(label: str, values: dict[str, float]) -> dict:
    result = [{"metric": {label: key}, "value": [1700000000.0, str(value)]} for key, value in values.items()]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@dataclass
class PoolsPrometheus(FakePrometheus):
    """The gate's queries as FakePrometheus answers them; the judge's by pool (None: no such pool)."""

    pools: dict[str, dict[str, float] | None] = field(default_factory=dict)

    def fetch_json(
        self, url: str, params: dict, timeout: float, validate_certs: bool = True, auth: Any = None
    ) -> dict:
        query = params["query"]
        if not query.startswith("sum by ("):
            return super().fetch_json(url, params, timeout, validate_certs, auth)
        self.calls.append((url, query))
        self.auths.append(auth)
        pool = next(name for name in self.pools if f'pool="{name}"' in query)
        buckets = self.pools[pool]
        if buckets is None:
            return labelled_answer("le", {})
        if query.startswith("sum by (le)"):
            return labelled_answer("le", buckets)
        return labelled_answer("status_class", {"2xx": buckets["+Inf"]})


def prometheus_judged_args(**extra: Any) -> dict[str, Any]:
    return {
        "phase": "partial",
        "provider": "prometheus",
        "prometheus_url": "http://prometheus:9090",
        "selector": {"pool": "new"},
        "baseline_selector": {"pool": "legacy"},
        **extra,
    }


def test_prometheus_judge_passes_a_release_that_behaves_like_legacy(capsys: pytest.CaptureFixture) -> None:
    prometheus = PoolsPrometheus(dict(PROM_VALUES), pools={"new": LIKE_LEGACY, "legacy": LIKE_LEGACY})
    rc, result = run_module(prometheus_judged_args(), capsys, fetch_json=prometheus.fetch_json)
    assert rc == 0
    judge = result["judge"]
    assert (judge["verdict"], judge["score"]) == ("Successful", 100)
    assert judge["metrics"]["latency"]["samples"] == {"new": 2000, "legacy": 2000}
    # The run took 35 s on the test's clock (one tick before the loop, two per measurement, one after):
    # both pools over those 35 s, at the same moments.
    assert judge["queries"] == {
        "new": {
            "buckets": 'sum by (le) (increase(msgroute_request_duration_seconds_bucket{pool="new"}[35s]))',
            "by_status": 'sum by (status_class) (increase(msgroute_requests_total{pool="new"}[35s]))',
        },
        "legacy": {
            "buckets": 'sum by (le) (increase(msgroute_request_duration_seconds_bucket{pool="legacy"}[35s]))',
            "by_status": 'sum by (status_class) (increase(msgroute_requests_total{pool="legacy"}[35s]))',
        },
    }
    # Asked once, after the run: 3 measurements x (5 queries + legacy's requests), then 2 per pool.
    assert len(prometheus.calls) == 3 * 6 + 4
    legacy = 'sum(increase(msgroute_requests_total{pool="legacy"}[60s]))'
    assert result["queries"]["legacy_requests"] == legacy
    assert [m["pool_requests"] for m in result["measurements"]] == [{"new": 4200, "legacy": 4200}] * 3
    assert "; baseline judge Successful (score 100 >= pass_score 95)" in result["message"]


def test_prometheus_judge_signs_in_like_the_gate(capsys: pytest.CaptureFixture) -> None:
    """Role monitoring's Prometheus asks for basic auth: the judge's queries send it as the gate's do."""
    prometheus = PoolsPrometheus(dict(PROM_VALUES), pools={"new": LIKE_LEGACY, "legacy": LIKE_LEGACY})
    args = {**prometheus_judged_args(), "prometheus_user": "msgroute", "prometheus_password": "p" * 20}
    rc, result = run_module(args, capsys, fetch_json=prometheus.fetch_json)
    assert rc == 0, result
    assert len(prometheus.auths) == 3 * 6 + 4
    assert set(prometheus.auths) == {("msgroute", "p" * 20)}


def test_prometheus_judge_fails_a_latency_regression_inside_the_sla(capsys: pytest.CaptureFixture) -> None:
    prometheus = PoolsPrometheus(dict(PROM_VALUES), pools={"new": SLOWER, "legacy": LIKE_LEGACY})
    rc, result = run_module(prometheus_judged_args(), capsys, fetch_json=prometheus.fetch_json)
    assert rc == 1
    assert [m["verdict"] for m in result["measurements"]] == ["Successful"] * 3
    assert result["verdict"] == result["judge"]["verdict"] == "Failed"
    assert result["judge"]["metrics"]["latency"]["classification"] == "High"
    assert result["msg"].startswith(
        "Failed: baseline judge Failed (score 50 < marginal_score 75): latency High"
    )


def test_prometheus_judge_without_legacy_series_never_passes(capsys: pytest.CaptureFixture) -> None:
    prometheus = PoolsPrometheus(dict(PROM_VALUES), pools={"new": LIKE_LEGACY, "legacy": None})
    rc, result = run_module(prometheus_judged_args(), capsys, fetch_json=prometheus.fetch_json)
    assert rc == 1
    assert result["counts"]["successful"] == 3
    assert result["verdict"] == result["judge"]["verdict"] == "Inconclusive"
    assert result["msg"].startswith("Inconclusive: baseline judge Inconclusive: too few samples")
    legacy_buckets = result["judge"]["queries"]["legacy"]["buckets"]
    assert legacy_buckets.endswith('{pool="legacy"}[35s]))')
    assert f"legacy {legacy_buckets}: no series" in result["msg"]


def test_prometheus_judge_query_failure_is_inconclusive_not_an_error(capsys: pytest.CaptureFixture) -> None:
    prometheus = PoolsPrometheus(dict(PROM_VALUES), pools={"new": LIKE_LEGACY, "legacy": LIKE_LEGACY})

    def judge_down(
        url: str, params: dict, timeout: float, validate_certs: bool = True, auth: Any = None
    ) -> dict:
        if params["query"].startswith("sum by ("):
            raise msg_http.FetchError(url, "timed out")
        return prometheus.fetch_json(url, params, timeout, validate_certs, auth)

    rc, result = run_module(prometheus_judged_args(), capsys, fetch_json=judge_down)
    assert rc == 1
    assert result["verdict"] == "Inconclusive"
    assert "query failed: GET http://prometheus:9090/api/v1/query failed: timed out" in result["msg"]


def test_prometheus_judge_before_the_run_reads_legacy_just_before_it(capsys: pytest.CaptureFixture) -> None:
    prometheus = PoolsPrometheus(dict(PROM_VALUES), pools={"new": LIKE_LEGACY, "legacy": LIKE_LEGACY})
    args = prometheus_judged_args(phase="full", judge={"baseline_period": "before"})
    rc, result = run_module(args, capsys, fetch_json=prometheus.fetch_json)
    assert rc == 0
    queries = result["judge"]["queries"]
    assert queries["new"]["buckets"].endswith('{pool="new"}[35s]))')
    # Legacy's 35 s end where the run's initial delay began (one tick of the test's clock before the run).
    assert queries["legacy"]["buckets"].endswith('{pool="legacy"}[35s] offset 40s))')
    assert result["judge"]["settings"]["baseline_period"] == "before"


# -------------------------------------------------------------------------- real HTTP on 127.0.0.1


@pytest.fixture
def local_server() -> Iterator[Callable[[type[http.server.BaseHTTPRequestHandler]], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handler: type[http.server.BaseHTTPRequestHandler]) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def reply(self, status: int, body: str, content_type: str = "text/plain; version=0.0.4") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_module_scrapes_a_real_metrics_endpoint(capsys: pytest.CaptureFixture, local_server) -> None:
    router = Router([Traffic(90, errors=1)] * 3)

    accept: list[str] = []

    class Metrics(_Quiet):
        def do_GET(self) -> None:
            accept.append(self.headers.get("Accept", ""))
            if self.path != "/metrics":
                self.reply(404, "not found")
                return
            self.reply(200, str(router.responses.pop(0)))

    base = local_server(Metrics)
    rc, result = run_module({"phase": "partial", "targets": [f"{base}/metrics"]}, capsys)
    assert rc == 1  # 1 in 90 is 5xx: 98.889 % < 99 %
    assert "success rate 98.889 % < threshold 99 %" in result["msg"]
    assert accept[0].startswith("text/plain")

    missing = f"{base}/nowhere"
    rc, result = run_module({"phase": "partial", "targets": [missing], "consecutive_error_limit": 0}, capsys)
    assert rc == 1
    assert f"target {missing} unreachable: HTTP 404 Not Found" in result["msg"]


def test_fetch_json_against_a_real_prometheus_api(local_server) -> None:
    class Api(_Quiet):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["query"][0]
            if query == "up":
                self.reply(200, json.dumps(prometheus_answer("1")), "application/json")
            else:
                error = {"status": "error", "errorType": "bad_data", "error": f"parse error in {query}"}
                self.reply(400, json.dumps(error), "application/json")

    base = local_server(Api)
    assert msg_http.fetch_json(f"{base}/api/v1/query", {"query": "up"}, 5) == prometheus_answer("1")
    with pytest.raises(msg_http.FetchError, match=r"HTTP 400 Bad Request: .*bad_data.*parse error in sum"):
        msg_http.fetch_json(f"{base}/api/v1/query", {"query": "sum("}, 5)


def test_fetch_json_sends_basic_auth_to_a_protected_api(local_server) -> None:
    expected = "Basic " + base64.b64encode(b"msgroute:pa:ss").decode()

    class Protected(_Quiet):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.reply(401, "Unauthorized", "text/plain")
            else:
                self.reply(200, json.dumps(prometheus_answer("1")), "application/json")

    url = local_server(Protected) + "/api/v1/query"
    assert msg_http.fetch_json(url, {"query": "up"}, 5, auth=("msgroute", "pa:ss")) == prometheus_answer("1")
    with pytest.raises(msg_http.FetchError) as refused:
        msg_http.fetch_json(url, {"query": "up"}, 5)
    assert refused.value.status == 401


def test_fetch_text_reports_refused_connection() -> None:
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet) as server:
        port = server.server_address[1]
    # The port was just released: nothing listens there any more.
    with pytest.raises(msg_http.FetchError) as failure:
        msg_http.fetch_text(f"http://127.0.0.1:{port}/metrics", 2)
    assert failure.value.url == f"http://127.0.0.1:{port}/metrics"
    assert "refused" in failure.value.cause.lower()


# ------------------------------------------------------------------------ one measurement per task (modes)


def measured_one_at_a_time(
    args: dict[str, Any], capsys: pytest.CaptureFixture, **deps: Any
) -> tuple[list[dict], tuple[int, dict]]:
    """plan, measure until decided (each task given the previous progress), decide: as analyse.yml does."""
    rc, plan = run_module({**args, "mode": "plan"}, capsys, **deps)
    assert (rc, plan["measured"], plan["verdict"]) == (0, False, "NotMeasured")
    ticks: list[dict] = []
    progress: dict = {}
    for _attempt in range(plan["attempts"]):
        rc, tick = run_module({**args, "mode": "measure", "progress": progress}, capsys, **deps)
        assert rc == 0, tick
        ticks.append(tick)
        progress = tick["progress"]
        if tick["decided"]:
            break
    measurements = [tick["measurement"] for tick in ticks]
    return ticks, run_module(
        {**args, "mode": "decide", "measurements": measurements, "progress": progress}, capsys, **deps
    )


def test_measured_one_at_a_time_the_gate_decides_as_in_one_task(capsys: pytest.CaptureFixture) -> None:
    args = {"phase": "partial", "provider": "prometheus", "prometheus_url": "http://p:9090", "count": 4}
    values = dict(PROM_VALUES)
    one_task = run_module(args, capsys, fetch_json=FakePrometheus(dict(values)).fetch_json)
    prometheus = FakePrometheus(values)
    ticks, (rc, decided) = measured_one_at_a_time(args, capsys, fetch_json=prometheus.fetch_json)
    assert (rc, one_task[0]) == (0, 0)
    assert [tick["line"].split(" ", 1)[0] for tick in ticks] == ["1/4", "2/4", "3/4", "4/4"]
    assert [tick["verdict"] for tick in ticks] == ["Running"] * 3 + ["Successful"]
    for key in ("verdict", "message", "counts", "thresholds", "queries"):
        assert decided[key] == one_task[1][key], key
    assert len(decided["measurements"]) == 4 and decided["measurements"] == [t["measurement"] for t in ticks]
    assert decided["attempts"] == 4 * 5


def test_measured_one_at_a_time_a_failure_stops_the_loop_and_fails_the_decision(
    capsys: pytest.CaptureFixture,
) -> None:
    args = {"phase": "partial", "provider": "prometheus", "prometheus_url": "http://p:9090", "count": 4}
    prometheus = FakePrometheus({**PROM_VALUES, "histogram_quantile": "0.083"})
    ticks, (rc, decided) = measured_one_at_a_time(args, capsys, fetch_json=prometheus.fetch_json)
    assert len(ticks) == 1 and ticks[0]["decided"] and ticks[0]["verdict"] == "Failed"
    assert rc == 1 and decided["verdict"] == "Failed"
    assert decided["msg"] == (
        "Failed: failed (1) > failure_limit (0); measurement 1/1: p95 latency 83 ms > threshold 48 ms"
    )


def test_measured_one_at_a_time_the_web_judge_counts_every_measured_interval(
    capsys: pytest.CaptureFixture,
) -> None:
    # Each task scrapes before and after its interval; the gaps between tasks (idle here) are not measured.
    gap = Traffic(0)
    fleet = Fleet(
        {
            R1: Router([Traffic(100, quick=300), gap] * 2 + [Traffic(100, quick=300)]),
            R2: Router([Traffic(100, quick=300), gap] * 2 + [Traffic(100, quick=300)]),
            L1: Router([Traffic(200, quick=600), gap] * 2 + [Traffic(200, quick=600)]),
        }
    )
    ticks, (rc, decided) = measured_one_at_a_time(judged_args(), capsys, fetch_text=fleet.fetch_text)
    assert rc == 0, decided
    assert len(ticks) == 3 and "pools" in ticks[-1]["progress"]
    latency = decided["judge"]["metrics"]["latency"]
    assert latency["samples"] == {"new": 2400, "legacy": 2400}
    assert decided["verdict"] == "Successful"
    assert "; baseline judge Successful (score 100 >= pass_score 95)" in decided["message"]


def test_the_first_measurement_waits_the_initial_delay_then_one_interval(
    capsys: pytest.CaptureFixture,
) -> None:
    sleeper = Sleeper()
    args = {
        "phase": "partial",
        "provider": "prometheus",
        "prometheus_url": "http://p:9090",
        "initial_delay": 7,
        "interval": 3,
        "mode": "measure",
    }
    prometheus = FakePrometheus(dict(PROM_VALUES))
    rc, first = run_module(args, capsys, sleep=sleeper, fetch_json=prometheus.fetch_json)
    assert rc == 0 and sleeper.slept == [7.0, 3.0]
    assert first["progress"]["run_started"] > first["progress"]["delay_started"]
    rc, second = run_module(
        {**args, "progress": first["progress"]}, capsys, sleep=sleeper, fetch_json=prometheus.fetch_json
    )
    assert rc == 0 and sleeper.slept == [7.0, 3.0, 3.0]
    assert second["progress"]["run_started"] == first["progress"]["run_started"]


def test_check_mode_measures_nothing_in_any_mode(capsys: pytest.CaptureFixture) -> None:
    prometheus = FakePrometheus(dict(PROM_VALUES))
    for mode in ("plan", "measure", "decide"):
        args = {"phase": "partial", "provider": "prometheus", "prometheus_url": "http://p:9090"}
        rc, result = run_module(
            {**args, "mode": mode, "_ansible_check_mode": True}, capsys, fetch_json=prometheus.fetch_json
        )
        assert (rc, result["verdict"], result["measured"]) == (0, "NotMeasured", False), mode
        assert result["message"].endswith("; not measured")
    assert prometheus.calls == []


def test_a_decision_without_enough_measurements_is_an_error(capsys: pytest.CaptureFixture) -> None:
    args = {"phase": "partial", "provider": "prometheus", "prometheus_url": "http://p:9090", "count": 3}
    rc, tick = run_module(
        {**args, "mode": "measure"}, capsys, fetch_json=FakePrometheus(dict(PROM_VALUES)).fetch_json
    )
    rc, decided = run_module(
        {**args, "mode": "decide", "measurements": [tick["measurement"]], "progress": tick["progress"]},
        capsys,
    )
    assert rc == 1 and decided["verdict"] == "Error"
    assert decided["msg"].startswith("Error: the run ended undecided; 1 of 3 measurements taken")


def test_a_measurement_that_is_not_one_is_refused(capsys: pytest.CaptureFixture) -> None:
    args = {"phase": "partial", "provider": "prometheus", "prometheus_url": "http://p:9090", "mode": "decide"}
    rc, result = run_module({**args, "measurements": [{"p95_ms": 3}]}, capsys)
    assert rc == 1 and "measurements: each needs a verdict" in result["msg"]
    rc, result = run_module({**args, "progress": {"count": -2}}, capsys)
    assert rc == 1 and "progress: not a run's progress" in result["msg"]
    rc, result = run_module({**args, "progress": {"run_started": "noon"}}, capsys)
    assert rc == 1 and "progress.run_started: expected seconds since the epoch, got 'noon'" in result["msg"]
