"""plugins/module_utils/redis_health.py: role redis's settings check and its reading of INFO."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils import redis_health

# Lines of a real `redis-cli INFO` answer (Redis 7.0.15, AOF on, maxmemory 64mb, noeviction), CRLF as sent.
INFO = "\r\n".join(
    [
        "# Server",
        "redis_version:7.0.15",
        "process_supervised:no",
        "",
        "# Clients",
        "connected_clients:3",
        "blocked_clients:2",
        "",
        "# Memory",
        "used_memory:917256",
        "used_memory_human:895.76K",
        "maxmemory:67108864",
        "maxmemory_human:64.00M",
        "maxmemory_policy:noeviction",
        "",
        "# Persistence",
        "loading:0",
        "current_fork_perc:0.00",
        "rdb_last_bgsave_status:ok",
        "aof_enabled:1",
        "aof_last_bgrewrite_status:ok",
        "aof_last_write_status:ok",
        "",
        "# Keyspace",
        "db0:keys=4,expires=1,avg_ttl=0",
        "",
    ]
)

GOOD: dict[str, Any] = {
    "password": "A" * 16,
    "maxmemory": "256mb",
    "maxmemory_policy": "noeviction",
    "appendfsync": "everysec",
    "memory": "512m",
    "publish_address": "",
}


def test_parse_info_types_and_keyspace() -> None:
    info = redis_health.parse_info(INFO)
    assert info["redis_version"] == "7.0.15"
    assert info["connected_clients"] == 3
    assert info["current_fork_perc"] == 0.0
    assert info["maxmemory_policy"] == "noeviction"
    assert info["db0"] == {"keys": 4, "expires": 1, "avg_ttl": 0}
    assert "# Server" not in info and "" not in info


def test_parse_backlog_sums_streams_per_class_and_ignores_other_keys() -> None:
    text = "\n".join(
        [
            "msgroute:q:strategic:0 4",
            "msgroute:q:strategic:7 1",
            "msgroute:q:tactical:3 2",
            "other:key 9",
            "a b c",
        ]
    )
    assert redis_health.parse_backlog(text, "msgroute:q:") == {
        "total": 7,
        "by_class": {"strategic": 5, "tactical": 2},
        "streams": {"msgroute:q:strategic:0": 4, "msgroute:q:strategic:7": 1, "msgroute:q:tactical:3": 2},
    }
    assert redis_health.parse_backlog("", "msgroute:q:") == {"total": 0, "by_class": {}, "streams": {}}


def test_health_of_a_good_redis() -> None:
    backlog = redis_health.parse_backlog("msgroute:q:tactical:1 3\n", "msgroute:q:")
    report = redis_health.health(redis_health.parse_info(INFO), backlog)
    assert report["up"] is True
    assert report["aof_enabled"] is True
    assert report["maxmemory"] == 64 * 1024 * 1024
    assert report["used_memory"] == 917256
    assert report["memory_used_ratio"] == round(917256 / (64 * 1024 * 1024), 4)
    assert report["connected_clients"] == 3
    assert report["backlog"]["total"] == 3
    assert report["problems"] == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"aof_enabled": "0"}, "AOF is off"),
        ({"aof_last_bgrewrite_status": "err"}, "aof_last_bgrewrite_status is err"),
        ({"aof_last_write_status": "err"}, "aof_last_write_status is err"),
        ({"rdb_last_bgsave_status": "err"}, "rdb_last_bgsave_status is err"),
        ({"maxmemory_policy": "allkeys-lru"}, "maxmemory-policy is allkeys-lru"),
        ({"maxmemory": "0"}, "no maxmemory"),
        ({"used_memory": "61000000"}, "a full Redis refuses new messages"),
        ({"loading": "1"}, "loading its data"),
    ],
)
def test_health_names_each_problem(change: dict[str, str], problem: str) -> None:
    lines = [
        f"{line.split(':', 1)[0]}:{change[line.split(':', 1)[0]]}"
        if line.split(":", 1)[0] in change
        else line
        for line in INFO.split("\r\n")
    ]
    report = redis_health.health(redis_health.parse_info("\r\n".join(lines)))
    assert len(report["problems"]) == 1 and problem in report["problems"][0], report["problems"]


def test_down() -> None:
    assert redis_health.down("container x is exited") == {
        "up": False,
        "problems": ["down: container x is exited"],
    }


@pytest.mark.parametrize(
    ("text", "size"),
    [("256mb", 256 * 1024**2), ("1GB", 1024**3), ("100000", 100000), ("64m", 64 * 1000**2), ("2kb", 2048)],
)
def test_redis_bytes(text: str, size: int) -> None:
    assert redis_health.redis_bytes(text) == size


@pytest.mark.parametrize(("text", "size"), [("512m", 512 * 1024**2), ("1g", 1024**3), ("4096", 4096)])
def test_docker_bytes(text: str, size: int) -> None:
    assert redis_health.docker_bytes(text) == size


@pytest.mark.parametrize("text", ["", "lots", "1.5gb", "-1mb", "12tb"])
def test_sizes_refuse_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError):
        redis_health.redis_bytes(text)
    with pytest.raises(ValueError):
        redis_health.docker_bytes(text)


def test_good_settings_pass() -> None:
    assert redis_health.settings_problems(GOOD) == []
    assert (
        redis_health.settings_problems({**GOOD, "publish_address": "10.1.2.3", "appendfsync": "always"}) == []
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"password": None}, "redis_password is not set"),
        ({"password": ""}, "redis_password is not set"),
        ({"password": "short-1234"}, "16-512 characters"),
        ({"password": "has a space in it ok?"}, "16-512 characters"),
        ({"password": "p@ss/word:with#url%chars"}, "16-512 characters"),
        ({"maxmemory_policy": "allkeys-lru"}, "would let Redis evict queued messages"),
        ({"maxmemory_policy": "volatile-ttl"}, "only 'noeviction' is accepted"),
        ({"appendfsync": "sometimes"}, "redis_appendfsync must be one of everysec, always, no"),
        ({"maxmemory": "0"}, "must be a limit above 0"),
        ({"maxmemory": "lots"}, "redis_maxmemory: not a Redis memory size"),
        ({"memory": "300m"}, "at least 1.5 x redis_maxmemory"),
        ({"memory": "big"}, "redis_memory: not a Docker memory limit"),
        ({"publish_address": "0.0.0.0"}, "every interface"),
        ({"publish_address": "::"}, "every interface"),
        ({"publish_address": "router-host"}, "must be an IP address"),
    ],
)
def test_each_unsafe_setting_is_refused(change: dict[str, Any], problem: str) -> None:
    problems = redis_health.settings_problems({**GOOD, **change})
    assert len(problems) == 1 and problem in problems[0], problems


def test_a_refusal_never_carries_the_password() -> None:
    password = "p@ss/word:with#url%chars"
    problems = redis_health.settings_problems(
        {**GOOD, "password": password, "maxmemory_policy": "allkeys-lru"}
    )
    assert len(problems) == 2
    assert all(password not in problem for problem in problems)
