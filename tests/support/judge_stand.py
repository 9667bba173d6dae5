"""A small real stand for the baseline judge with provider prometheus: one router container per pool (by
default ``new``, ``slow`` - the same image slowed by fault injection - and ``legacy``), a Prometheus scraping
them every second with the labels role monitoring gives (job msgroute-router, pool=<name>), bounded load on
each, and the judge asked of that Prometheus exactly as rollout_analysis asks it.

Its own names (``<prefix>-<pool>``, ``<prefix>-prom``), network (``<prefix>``) and loopback ports
(``port_base`` + 1, 2, ... and + 9 for Prometheus), so it runs beside a local rehearsal. Used by
tests/integration/test_judge_live.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from ansible_collections.msgroute.rollout.plugins.module_utils import _http as http
from ansible_collections.msgroute.rollout.plugins.module_utils.judge import (
    JudgeConfig,
    JudgeResult,
    judge_pools,
    pool_queries,
    prometheus_totals,
    run_range,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import MetricNames

from tests.support import ROOT
from tests.support.processes import docker

ROUTER_IMAGE = "msgroute/router:2.0.0"
PROMETHEUS_IMAGE = "msgroute/prometheus:local"
ROUTER_JOB = "msgroute-router"
# Pool -> injected latency in ms (0: none).
POOLS = {"new": 0.0, "slow": 5.0, "legacy": 0.0}


def prometheus_config(prefix: str, pools: list[str]) -> str:
    targets = "".join(
        f'      - targets: ["{prefix}-{pool}:8080"]\n        labels: {{pool: {pool}}}\n' for pool in pools
    )
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: {ROUTER_JOB}\n    static_configs:\n{targets}"
    )


def _wait(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:g} s")
        time.sleep(0.5)


@dataclass
class Stand:
    prefix: str = "msgroute-judge"
    port_base: int = 28600
    pools: dict[str, float] = field(default_factory=lambda: dict(POOLS))
    config_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="judge-stand-")))

    def port(self, pool: str) -> int:
        return self.port_base + 1 + list(self.pools).index(pool)

    def url(self, pool: str) -> str:
        return f"http://127.0.0.1:{self.port(pool)}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.port_base + 9}"

    @property
    def names(self) -> list[str]:
        return [f"{self.prefix}-{pool}" for pool in self.pools] + [f"{self.prefix}-prom"]

    def up(self) -> None:
        self.down()
        docker("network", "create", self.prefix)
        for pool, latency in self.pools.items():
            docker(
                "run", "-d", "--name", f"{self.prefix}-{pool}", "--network", self.prefix,
                "-p", f"127.0.0.1:{self.port(pool)}:8080",
                "-e", f"ROUTER_VERSION={'legacy' if pool == 'legacy' else '2.0.0'}", "-e", "ROUTER_PORT=8080",
                "-e", f"ROUTER_FAULT_INJECTION={'on' if latency else 'off'}",
                "-e", f"ROUTER_FAULT_LATENCY_MS={latency:g}",
                "--memory", "256m", "--cpus", "1.0", ROUTER_IMAGE,
            )  # fmt: skip
        self.config_dir.mkdir(parents=True, exist_ok=True)
        config = self.config_dir / "prometheus.yml"
        config.write_text(prometheus_config(self.prefix, list(self.pools)))
        self.config_dir.chmod(0o755)
        config.chmod(0o644)
        docker(
            "run", "-d", "--name", f"{self.prefix}-prom", "--network", self.prefix,
            "-p", f"127.0.0.1:{self.port_base + 9}:9090", "-v", f"{self.config_dir}:/etc/judge:ro",
            "--entrypoint", "prometheus", PROMETHEUS_IMAGE,
            "--config.file=/etc/judge/prometheus.yml", "--storage.tsdb.path=/prometheus",
        )  # fmt: skip
        for pool in self.pools:
            _wait(f"{self.url(pool)}/ready")
        _wait(f"{self.prometheus_url}/-/ready")

    def down(self) -> None:
        docker("rm", "-f", *self.names, check=False)
        docker("network", "rm", self.prefix, check=False)
        shutil.rmtree(self.config_dir, ignore_errors=True)

    def load(self, seconds: int, rates: dict[str, int]) -> None:
        """Bounded load on each pool at once (``python -m router_app.loadgen``), then two scrapes' wait."""
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "router_app.loadgen",
                    "--target",
                    self.url(pool),
                    "--rate",
                    str(rate),
                    "--duration",
                    str(seconds),
                    "--concurrency",
                    "4",
                    "--report-every",
                    "0",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pool, rate in rates.items()
        ]
        for proc in procs:
            proc.wait(timeout=seconds + 60)
        time.sleep(2.5)

    def judge(
        self,
        run_seconds: float,
        new: str = "new",
        legacy: str = "legacy",
        config: JudgeConfig | None = None,
    ) -> tuple[JudgeResult, dict[str, dict[str, str]]]:
        """The judge of pool ``new`` against pool ``legacy`` over the last ``run_seconds``, as
        rollout_analysis asks Prometheus for it (a pool the stand does not run has no series)."""
        config = config or JudgeConfig()
        names = MetricNames()
        selectors = {"new": {"job": ROUTER_JOB, "pool": new}, "legacy": {"job": ROUTER_JOB, "pool": legacy}}
        seconds, offset = run_range(run_seconds, config.baseline_period)
        queries = {
            "new": pool_queries(selectors["new"], seconds, names),
            "legacy": pool_queries(selectors["legacy"], seconds, names, offset),
        }
        totals = {}
        for pool, by_key in queries.items():
            answers = {}
            for key, query in by_key.items():
                try:
                    answers[key] = http.fetch_json(
                        f"{self.prometheus_url}/api/v1/query", {"query": query}, 10
                    )
                except http.FetchError as exc:
                    answers[key] = exc
            totals[pool] = prometheus_totals(answers, by_key, names)
        return judge_pools(totals["new"], totals["legacy"], config, names), queries
