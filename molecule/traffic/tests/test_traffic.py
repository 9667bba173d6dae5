"""The traffic role's nginx, checked from the Debian host that runs it (the engine's CLI and socket)."""

import json

CONTAINER = "msgroute-t4m-lb"
CONFIG_DIR = "/var/lib/msgroute-rollout/t4m/lb"


def inspect(host) -> dict:
    result = host.run(f"docker inspect {CONTAINER}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)[0]


def http(host, url: str, headers: str = "") -> dict:
    """GET/POST through the host's loopback (the instance shares the host network)."""
    script = (
        "import json, sys, urllib.request as u\n"
        f'req = u.Request({url!r}, data=b\'{{"id": "molecule", "source": "t", "type": "telemetry"}}\''
        " if 'route' in sys.argv[1] else None, headers={'Content-Type': 'application/json'})\n"
        "r = u.urlopen(req, timeout=5)\n"
        "print(json.dumps({'status': r.status, 'headers': dict(r.headers), 'body': r.read().decode()}))\n"
    )
    result = host.run("python3 -c %s %s", script, url)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_runs_non_root_read_only_and_locked_down(host):
    info = inspect(host)
    config, hostconfig = info["Config"], info["HostConfig"]
    assert info["State"]["Running"] is True
    assert config["User"] == "101:101"
    assert hostconfig["ReadonlyRootfs"] is True
    assert hostconfig["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in hostconfig["SecurityOpt"]
    assert config["StopSignal"] == "SIGQUIT"


def test_only_the_client_metrics_and_guard_ports_are_published(host):
    bindings = inspect(host)["HostConfig"]["PortBindings"]
    assert bindings == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "28280"}],
        "9145/tcp": [{"HostIp": "127.0.0.1", "HostPort": "28281"}],
        "9146/tcp": [{"HostIp": "127.0.0.1", "HostPort": "28289"}],
    }


def test_config_and_recorded_settings(host):
    conf = host.file(f"{CONFIG_DIR}/nginx.conf")
    assert conf.exists
    # The runtime line: weights and members as JSON, for a cold start.
    line = next(line for line in conf.content_string.splitlines() if line.endswith("-- msgroute:runtime"))
    runtime = json.loads(line.split("[==[", 1)[1].split("]==]", 1)[0])
    assert (runtime["new_weight"], runtime["shadow_percent"]) == (30, 10)
    assert runtime["members"]["legacy"] and runtime["members"]["new"]
    recorded = json.loads(host.file(f"{CONFIG_DIR}/traffic.json").content_string)
    assert recorded == {"new_weight": 30, "shadow_percent": 10, "legacy_enabled": True}


def test_runtime_api_answers_inside_the_container(host):
    # Not published (see the ports test): only `docker exec` on the host reaches it.
    script = (
        'exec 3<>/dev/tcp/127.0.0.1/8081; printf "GET /_msgroute/runtime HTTP/1.0\\r\\n\\r\\n" >&3; cat <&3'
    )
    result = host.run("docker exec %s bash -c %s", CONTAINER, script)
    assert result.rc == 0, result.stderr
    state = json.loads(result.stdout.split("\r\n\r\n", 1)[1])
    assert (state["new_weight"], state["shadow_percent"], state["has_new"], state["has_legacy"]) == (
        30,
        10,
        True,
        True,
    )
    assert (
        host.run("python3 -c %s", "import socket; socket.create_connection(('127.0.0.1', 8081), 1)").rc != 0
    )


def test_health_split_header_and_metrics(host):
    assert http(host, "http://127.0.0.1:28280/_msgroute/health")["status"] == 200
    answer = http(host, "http://127.0.0.1:28280/v1/route")
    assert answer["status"] == 200
    assert answer["headers"]["X-Msgroute-Pool"] in ("new", "legacy")
    metrics = http(host, "http://127.0.0.1:28281/metrics")["body"]
    assert "msgroute_lb_new_weight 30" in metrics
    assert 'msgroute_lb_requests_total{pool="new",status_class="2xx"}' in metrics
