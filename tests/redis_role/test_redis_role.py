"""Role redis for real: the durable queue's Redis in its container, as the role runs it (tests/redis_role)."""

from __future__ import annotations

import json
import time

from tests.redis_role.conftest import CONFIG_DIR, CONTAINER, NETWORK, VOLUME, World
from tests.support.processes import docker


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def test_persistence_is_aof_with_everysec_and_no_eviction(world: World) -> None:
    assert world.cli("config", "get", "appendonly").split() == ["appendonly", "yes"]
    assert world.cli("config", "get", "appendfsync").split() == ["appendfsync", "everysec"]
    assert world.cli("config", "get", "maxmemory-policy").split() == ["maxmemory-policy", "noeviction"]
    assert world.cli("config", "get", "maxmemory").split() == ["maxmemory", str(64 * 1024 * 1024)]
    assert world.cli("config", "get", "dir").split() == ["dir", "/data"]
    mounts = {m["Destination"]: m for m in inspect(CONTAINER)["Mounts"]}
    assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == VOLUME


def test_password_required_and_kept_out_of_inspect(world: World) -> None:
    assert "NOAUTH" in world.cli("ping", password="")
    assert "WRONGPASS" in world.cli("ping", password="not-the-password-at-all")
    assert world.cli("ping") == "PONG"
    # Neither the command line, the environment nor the healthcheck Docker keeps carries it.
    assert world.password not in docker("inspect", CONTAINER).stdout
    assert world.password not in docker("top", CONTAINER).stdout
    auth = CONFIG_DIR / "redis" / "auth.conf"
    assert oct(auth.stat().st_mode & 0o777) == "0o400"
    assert (auth.stat().st_uid, auth.stat().st_gid) == (999, 999)
    # Only the configuration directory is Redis' group's; the data directory above it is not.
    assert oct((CONFIG_DIR / "redis").stat().st_mode & 0o777) == "0o750"
    assert (CONFIG_DIR.stat().st_mode & 0o777, CONFIG_DIR.stat().st_gid) == (0o755, 0)


def test_hardened_and_not_published(world: World) -> None:
    container = inspect(CONTAINER)
    host = container["HostConfig"]
    assert not host["PortBindings"]
    assert not container["NetworkSettings"]["Ports"] or all(
        not bindings for bindings in container["NetworkSettings"]["Ports"].values()
    )
    assert docker("port", CONTAINER).stdout.strip() == ""
    assert list(container["NetworkSettings"]["Networks"]) == [NETWORK]
    assert container["Config"]["User"] == "999:999"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] == 128 * 1024 * 1024


def test_a_second_run_changes_nothing(world: World) -> None:
    again = world.apply()
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed("h5redis-host") == 0, again.output[-3000:]
    assert world.password not in again.output


def test_unsafe_settings_are_refused_and_nothing_changes(world: World) -> None:
    started = inspect(CONTAINER)["State"]["StartedAt"]
    evicting = world.apply("-e", "redis_maxmemory_policy=allkeys-lru")
    assert evicting.returncode != 0
    assert "noeviction" in evicting.flat and "allkeys-lru" in evicting.flat
    no_password = world.apply("-e", "redis_password=")
    assert no_password.returncode != 0
    assert "redis_password is not set" in no_password.flat
    wildcard = world.apply("-e", "redis_publish_address=0.0.0.0")
    assert wildcard.returncode != 0
    assert "every interface" in wildcard.flat
    assert world.password not in evicting.output + no_password.output + wildcard.output
    assert inspect(CONTAINER)["State"]["StartedAt"] == started
    assert world.cli("config", "get", "maxmemory-policy").split() == ["maxmemory-policy", "noeviction"]


def test_data_survives_a_restart_and_a_kill(world: World) -> None:
    stream = "msgroute:q:strategic:3"
    world.cli("del", stream)
    for n in range(3):
        assert world.cli("xadd", stream, "*", "id", f"m{n}")
    docker("restart", CONTAINER)
    world.wait_ready()
    assert world.cli("xlen", stream) == "3"
    # SIGKILL: no shutdown fsync; with everysec what was written more than a second before survives.
    assert world.cli("xadd", stream, "*", "id", "m3")
    time.sleep(2.5)
    docker("kill", CONTAINER)
    if inspect(CONTAINER)["State"]["Running"] is not True:
        docker("start", CONTAINER)
    world.wait_ready()
    assert world.cli("xlen", stream) == "4"


def test_status_reports_health_and_backlog(world: World) -> None:
    stream = "msgroute:q:strategic:3"
    world.cli("del", stream, "msgroute:q:tactical:0", "msgroute:q:not-a-stream")
    for n in range(2):
        world.cli("xadd", stream, "*", "id", f"s{n}")
    world.cli("xadd", "msgroute:q:tactical:0", "*", "id", "t0")
    world.cli("set", "msgroute:q:not-a-stream", "x")
    status = world.status()
    assert status["up"] is True, status
    assert status["container"] == CONTAINER
    assert status["aof_enabled"] is True
    assert status["aof_last_write_status"] == "ok"
    assert status["aof_last_bgrewrite_status"] == "ok"
    assert status["maxmemory_policy"] == "noeviction"
    assert status["maxmemory"] == 64 * 1024 * 1024
    assert 0 < status["used_memory"] < status["maxmemory"]
    assert status["connected_clients"] >= 1
    assert status["backlog"] == {
        "total": 3,
        "by_class": {"strategic": 2, "tactical": 1},
        "streams": {"msgroute:q:strategic:3": 2, "msgroute:q:tactical:0": 1},
    }
    assert status["problems"] == []
    # status.yml prints the same report for the inventory's redis group and finds nothing wrong with it.
    run = world.status_playbook()
    assert "TASK [Say how Redis is]" in run.output, run.output[-3000:]
    assert "maxmemory_policy: noeviction" in run.output and "total: 3" in run.output
    assert "Redis on h5redis-host" not in run.output
    assert world.password not in run.output


def test_status_says_down_when_stopped(world: World) -> None:
    docker("stop", CONTAINER)
    try:
        status = world.status()
        assert status["up"] is False
        assert status["problems"] == [f"down: container {CONTAINER} is exited"]
        # status.yml: a redis group's Redis down makes the rollout degraded (exit code 2).
        run = world.status_playbook()
        assert run.returncode == 2, run.output[-3000:]
        assert f"DEGRADED: Redis on h5redis-host: down: container {CONTAINER} is exited" in run.flat
    finally:
        docker("start", CONTAINER)
        world.wait_ready()


def test_absent_removes_redis_its_data_and_configuration(world: World) -> None:
    removed = world.apply("-e", "entry=absent")
    assert removed.returncode == 0, removed.output[-3000:]
    assert docker("inspect", CONTAINER, check=False).returncode != 0
    assert docker("volume", "inspect", VOLUME, check=False).returncode != 0
    assert not (CONFIG_DIR / "redis").exists()
    assert world.status()["problems"] == [f"down: no container {CONTAINER}"]
