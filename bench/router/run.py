"""Load benchmark of the routing engine: ``POST /v1/route`` straight to the engine and through nginx,
with nginx answering a static 200 measured in the same run as the reference.

Usage (from the repository root, as any user; needs ``wrk`` and ``nginx`` on PATH, no root)::

    python -m bench.router.run [--duration 10] [--rates 500,1000,2000] [--dispatch] [--durable] [--out FILE]

It starts its own ``python -m router_app`` (and, with ``--dispatch``, two ``python -m router_app.sink``
destinations) and its own nginx (``-p``/``-c`` in a temporary prefix), all on free 127.0.0.1 ports, runs
``wrk -t1 -c32`` for each point (fixed rates are paced by ``route.lua``; ``max`` is unpaced), prints a table
and writes the figures as JSON. Every process it starts is stopped at the end. Each message has a unique id, a
realistic type mix and a small payload, so classification, the idempotency store and the metrics all work as
in production. This is a benchmark, not a test: it reports figures and whether the targets are met, and
exits 0 either way unless something failed to run.

With ``--durable`` it also starts a ``redis-server`` (password, AOF ``appendfsync everysec``, in a temporary
directory) and measures, direct and through nginx, two delivering engines side by side: the in-memory queue
(``dispatch``) and the durable queue (``durable``: ``ROUTER_QUEUE_URL``, every accepted message in a Redis
stream before the answer). Before each point on a delivering engine it waits until the engine's queue is
empty, so one point's backlog does not load the next.

Targets (issue 3): p95 <= 2 ms at 1,000 msg/s through nginx; maximum through nginx >= 10% of nginx static.
Issue 12: the same p95 target with the durable queue on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.net import free_port, wait_http

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LUA = HERE / "route.lua"
THREADS = 1
CONNECTIONS = 32
P95_TARGET_MS = 2.0
P95_TARGET_RATE = 1000
MAX_SHARE_TARGET = 0.10

NGINX_CONF = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream router {{
        server 127.0.0.1:{router_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /static {{
            default_type application/json;
            return 200 '{{"ok":true}}';
        }}
        location / {{
            proxy_pass http://router;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Point:
    target: str  # direct | nginx | nginx-static | direct+dispatch | (direct|nginx)+(memory|durable)
    rate: int | None  # None = maximum


@contextmanager
def process(args: Sequence[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


REDIS_PASSWORD = "bench-durable-queue"


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server as a deployment runs it for the durable queue: password, AOF every second."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install -y redis-server)")
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        port = free_port()
        args = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", REDIS_PASSWORD,
            "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", directory,
        ]  # fmt: skip
        with process(args):
            url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
            deadline = time.monotonic() + 15
            while subprocess.run(
                ["redis-cli", "-p", str(port), "-a", REDIS_PASSWORD, "--no-auth-warning", "ping"],
                capture_output=True, check=False,
            ).stdout.strip() != b"PONG":  # fmt: skip
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.1)
            yield url


def queue_depth(url: str) -> int:
    with urllib.request.urlopen(f"{url}/health/details", timeout=5) as response:
        details = json.loads(response.read())
    return sum(q["depth"] for q in details["queues"].values())


def settle(url: str, timeout: float = 120.0) -> None:
    """Until the engine has delivered its backlog (its own queue, or the pool's in Redis)."""
    deadline = time.monotonic() + timeout
    while queue_depth(url) and time.monotonic() < deadline:
        time.sleep(0.2)


def router_env(port: int, destinations: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update(
        PYTHONPATH=str(ROOT), ROUTER_HOST="127.0.0.1", ROUTER_PORT=str(port), ROUTER_VERSION="bench",
        ROUTER_LOG_LEVEL="WARNING",
    )  # fmt: skip
    if destinations:
        env["ROUTER_DESTINATIONS"] = destinations
    return env


@contextmanager
def router(stack: ExitStack, dispatch: bool, queue_url: str | None = None) -> Iterator[str]:
    destinations = None
    if dispatch:
        sinks = []
        for name in ("sink-a", "sink-b"):
            port = free_port()
            stack.enter_context(
                process([sys.executable, "-m", "router_app.sink", "--port", str(port), "--name", name])
            )
            wait_http(f"http://127.0.0.1:{port}/health")
            sinks.append(f"{name}=http://127.0.0.1:{port}/deliver")
        destinations = ",".join(sinks)
    port = free_port()
    env = router_env(port, destinations)
    if dispatch:  # a maximum-rate point must measure the engine, not a full queue's 429s
        env["ROUTER_QUEUE_CAPACITY"] = "10000000"
    if queue_url:
        env["ROUTER_QUEUE_URL"] = queue_url
    proc = stack.enter_context(process([sys.executable, "-m", "router_app"], env))
    url = f"http://127.0.0.1:{port}"
    ENGINE_PIDS[url] = proc.pid
    wait_http(f"{url}/ready")
    yield url


# url -> pid of the engine serving it, for its CPU time per message.
ENGINE_PIDS: dict[str, int] = {}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def nginx(router_port: int) -> Iterator[str]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as prefix:
        port = free_port()
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, router_port=router_port))
        subprocess.run([binary, "-t", "-q", "-p", prefix, "-c", str(conf)], check=True)
        proc = subprocess.Popen([binary, "-p", prefix, "-c", str(conf), "-g", "daemon off;"])
        try:
            wait_http(f"http://127.0.0.1:{port}/static")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.send_signal(signal.SIGQUIT)  # graceful stop
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def wrk(url: str, rate: int | None, duration: float, static: bool = False) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {
            **os.environ,
            "BENCH_RATE": str(rate or 0),
            "BENCH_THREADS": str(THREADS),
            "BENCH_OUT": out.name,
            "BENCH_STATIC": "1" if static else "0",
            "BENCH_PATH": "/static" if static else "/v1/route",
        }
        args = [
            "wrk",
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{duration:g}s",
            "--timeout",
            "5s",
            "-s",
            str(LUA),
            url,
        ]
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, timeout=duration + 60)
        raw = json.loads(Path(out.name).read_text())
    seconds = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    errors = sum(raw["errors"].values())
    return {
        "requests": raw["requests"],
        "throughput_rps": round(raw["requests"] / seconds, 1),
        "p50_ms": lat["p50"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors": errors,
        "error_detail": raw["errors"],
    }


def measure(
    points: Sequence[Point],
    urls: dict[str, str],
    duration: float,
    warmup: float,
    engines: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``engines``: target -> the delivering engine behind it, waited for (``settle``) before a point."""
    results = []
    warmed: set[str] = set()
    engines = engines or {}
    for point in points:
        base = urls[point.target]
        static = point.target == "nginx-static"
        if point.target in engines:
            settle(engines[point.target])
        if point.target not in warmed:
            wrk(base, None, warmup, static)
            warmed.add(point.target)
            if point.target in engines:
                settle(engines[point.target])
        engine = engines.get(point.target) or urls.get(point.target.replace("nginx", "direct"))
        pid = ENGINE_PIDS.get(engine or "")
        cpu_before = cpu_seconds(pid) if pid and not static else None
        figures = wrk(base, point.rate, duration, static)
        if pid and cpu_before is not None:
            if point.target in engines:  # its deliveries too: what it accepted, it delivers
                settle(engines[point.target])
            used = cpu_seconds(pid) - cpu_before
            figures["engine_cpu_us_per_msg"] = round(used / max(figures["requests"], 1) * 1e6, 1)
        results.append({"target": point.target, "rate": point.rate or "max", **figures})
        rate = str(point.rate or "max")
        rps, p95 = figures["throughput_rps"], figures["p95_ms"]
        progress = f"{point.target:<16} {rate:>5}: {rps:>9.1f} req/s p95 {p95:.3f} ms"
        print(f"  measured {progress}", file=sys.stderr, flush=True)
    return results


def verdict(results: list[dict[str, Any]]) -> dict[str, Any]:
    def find(target: str, rate: int | str) -> dict[str, Any] | None:
        return next((r for r in results if r["target"] == target and r["rate"] == rate), None)

    at_rate = find("nginx", P95_TARGET_RATE)
    proxied_max = find("nginx", "max")
    static_max = find("nginx-static", "max")
    share = (
        proxied_max["throughput_rps"] / static_max["throughput_rps"] if proxied_max and static_max else None
    )
    durable = {}
    for queue in ("memory", "durable"):
        point = find(f"nginx+{queue}", P95_TARGET_RATE)
        if point is not None:
            durable[f"p95_at_1000_via_nginx_{queue}_ms"] = point["p95_ms"]
            durable[f"p95_{queue}_met"] = point["p95_ms"] <= P95_TARGET_MS and point["errors"] == 0
        for target in (f"direct+{queue}", f"nginx+{queue}"):
            top = find(target, "max")
            if top is not None:
                durable[f"max_{target}_rps"] = top["throughput_rps"]
    return {
        **durable,
        "p95_at_1000_via_nginx_ms": at_rate["p95_ms"] if at_rate else None,
        "p95_target_ms": P95_TARGET_MS,
        "p95_met": bool(at_rate and at_rate["p95_ms"] <= P95_TARGET_MS and at_rate["errors"] == 0),
        "max_via_nginx_share_of_static": round(share, 4) if share is not None else None,
        "share_target": MAX_SHARE_TARGET,
        "share_met": bool(share is not None and share >= MAX_SHARE_TARGET),
    }


# (title, alignment and width, number format, result key)
COLUMNS = (
    ("target", "<16", "", "target"),
    ("rate", ">6", "", "rate"),
    ("req/s", ">10", ".1f", "throughput_rps"),
    ("p50 ms", ">8", ".3f", "p50_ms"),
    ("p95 ms", ">8", ".3f", "p95_ms"),
    ("p99 ms", ">8", ".3f", "p99_ms"),
    ("max ms", ">8", ".3f", "max_ms"),
    ("errors", ">7", "", "errors"),
    ("cpu µs/msg", ">11", "", "engine_cpu_us_per_msg"),
)


def table(results: list[dict[str, Any]]) -> str:
    head = " ".join(format(title, align) for title, align, _, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        cells = (
            format(r[key] if number else str(r.get(key, "")), align + number)
            for _, align, number, key in COLUMNS
        )
        lines.append(" ".join(cells))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point (1..120)")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="unmeasured seconds before each target's first point"
    )
    parser.add_argument("--rates", default="500,1000,2000", help="fixed rates in msg/s, comma-separated")
    parser.add_argument(
        "--dispatch", action="store_true", help="also measure with delivery to two local sinks"
    )
    parser.add_argument(
        "--durable",
        action="store_true",
        help="also measure delivering engines with the in-memory and the durable (Redis Streams) queue",
    )
    parser.add_argument("--out", default=str(HERE / "out" / "router_bench.json"), help="JSON output file")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be 1..120 and --warmup 0..60")
    try:
        args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates must be integers")
    if any(not 1 <= r <= 20_000 for r in args.rates):
        parser.error("--rates must be 1..20000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "nginx", *(("redis-server", "redis-cli") if args.durable else ())):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is not installed (Debian: apt-get install -y {tool})", file=sys.stderr)
            return 2
    rates: list[int | None] = [*args.rates, None]
    with ExitStack() as stack:
        direct = stack.enter_context(router(stack, dispatch=False))
        proxied = stack.enter_context(nginx(int(direct.rsplit(":", 1)[1])))
        urls = {"direct": direct, "nginx": proxied, "nginx-static": proxied}
        points = [Point("nginx-static", None), *[Point(t, r) for t in ("direct", "nginx") for r in rates]]
        points.append(Point("nginx-static", None))  # measured again at the end: drift shows
        engines: dict[str, str] = {}
        if args.dispatch:
            urls["direct+dispatch"] = engines["direct+dispatch"] = stack.enter_context(router(stack, True))
            points += [Point("direct+dispatch", r) for r in rates]
        if args.durable:
            queue_url = stack.enter_context(redis_server())
            for queue, url in (("memory", None), ("durable", queue_url)):
                engine = stack.enter_context(router(stack, True, url))
                urls[f"direct+{queue}"] = engines[f"direct+{queue}"] = engine
                urls[f"nginx+{queue}"] = stack.enter_context(nginx(int(engine.rsplit(":", 1)[1])))
                engines[f"nginx+{queue}"] = engine
                points += [Point(f"{t}+{queue}", r) for r in rates for t in ("direct", "nginx")]
        results = measure(points, urls, args.duration, args.warmup, engines)
    statics = [r for r in results if r["target"] == "nginx-static"]
    best_static = max(statics, key=lambda r: r["throughput_rps"])
    results = [r for r in results if r["target"] != "nginx-static"] + [best_static]
    report = {
        "benchmark": "router_app POST /v1/route",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load": {"tool": "wrk", "threads": THREADS, "connections": CONNECTIONS, "duration_s": args.duration},
        "static_runs_rps": [r["throughput_rps"] for r in statics],
        "results": results,
        "targets": verdict(results),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    t = report["targets"]
    print(
        f"\np95 at {P95_TARGET_RATE} msg/s through nginx: {t['p95_at_1000_via_nginx_ms']} ms "
        f"(target <= {P95_TARGET_MS} ms): {'met' if t['p95_met'] else 'MISSED'}"
    )
    print(
        f"max through nginx / nginx static: {t['max_via_nginx_share_of_static']} "
        f"(target >= {MAX_SHARE_TARGET}): {'met' if t['share_met'] else 'MISSED'}"
    )
    for queue in ("memory", "durable"):
        if f"p95_at_1000_via_nginx_{queue}_ms" in t:
            print(
                f"delivering, {queue} queue: p95 at {P95_TARGET_RATE} msg/s through nginx "
                f"{t[f'p95_at_1000_via_nginx_{queue}_ms']} ms (target <= {P95_TARGET_MS} ms): "
                f"{'met' if t[f'p95_{queue}_met'] else 'MISSED'}; max direct "
                f"{t.get(f'max_direct+{queue}_rps')} req/s, "
                f"through nginx {t.get(f'max_nginx+{queue}_rps')} req/s"
            )
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
