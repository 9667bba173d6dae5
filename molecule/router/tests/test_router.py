"""The router role's instance, checked on the host that runs it."""

import json

import requests

CONTAINER = "msgroute-molecule-router-1"


def inspect(host) -> dict:
    result = host.run(f"docker inspect {CONTAINER}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)[0]


def test_runs_non_root_and_locked_down(host):
    info = inspect(host)
    config, hostconfig = info["Config"], info["HostConfig"]
    assert info["State"]["Running"] is True
    assert config["User"] == "10001:10001"
    assert hostconfig["ReadonlyRootfs"] is True
    assert hostconfig["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in hostconfig["SecurityOpt"]
    assert hostconfig["Memory"] == 256 * 1024 * 1024
    assert hostconfig["RestartPolicy"]["Name"] == "unless-stopped"
    assert config["Labels"]["org.msgroute.version"] == "molecule"


def test_process_inside_is_not_root(host):
    result = host.run(f"docker exec {CONTAINER} id -u")
    assert result.rc == 0
    assert result.stdout.strip() == "10001"


def test_published_on_loopback_and_ready(host):
    info = inspect(host)
    bindings = info["HostConfig"]["PortBindings"]["8080/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": "18181"}]
    # The scenario's host is this machine (local connection), so its loopback is ours.
    assert requests.get("http://127.0.0.1:18181/ready", timeout=3).status_code == 200
    version = requests.get("http://127.0.0.1:18181/version", timeout=3).json()
    assert version["version"] == "molecule"
    assert version["mode"] == "live"


def test_fault_injection_is_off(host):
    env = inspect(host)["Config"]["Env"]
    assert not [item for item in env if item.startswith("ROUTER_FAULT_INJECTION=on")]
