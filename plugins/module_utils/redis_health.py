"""The durable queue's Redis (role redis): its settings checked before it runs, its health read from INFO.

Pure functions, no I/O: role redis runs ``redis-cli INFO`` and a scan of the routers' streams inside the
container and hands the text to the filters ``msgroute.rollout.redis_health`` and ``redis_settings``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

# The only policy that never evicts a key: a queue whose entries Redis dropped would lose accepted messages.
QUEUE_SAFE_POLICY = "noeviction"
APPENDFSYNC = ("everysec", "always", "no")
# Password characters: URL-unreserved, so the password goes into ROUTER_QUEUE_URL (redis://:PASSWORD@host)
# and into redis.conf as one bare word without quoting or escaping.
PASSWORD_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{16,512}$")
# At this share of maxmemory the status warns: with noeviction, a full Redis refuses every write (the routers
# answer 503 durable queue unavailable).
MEMORY_WARN_RATIO = 0.9

_REDIS_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}
_DOCKER_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def redis_bytes(value: Any) -> int:
    """A Redis memory setting (``256mb``, ``1gb``, ``100000``; Redis' units: k=1000, kb=1024) in bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]b?|b)?\s*", str(value), re.IGNORECASE)
    if not match:
        raise ValueError(f"not a Redis memory size (e.g. 256mb): {value!r}")
    return int(match[1]) * _REDIS_UNITS[(match[2] or "").lower()]


def docker_bytes(value: Any) -> int:
    """A Docker memory limit (``512m``, ``1g``; k/m/g are powers of 1024) in bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([bkmg])?\s*", str(value), re.IGNORECASE)
    if not match:
        raise ValueError(f"not a Docker memory limit (e.g. 512m): {value!r}")
    return int(match[1]) * _DOCKER_UNITS[(match[2] or "").lower()]


def settings_problems(settings: Mapping[str, Any]) -> list[str]:
    """Why role redis must not run with these settings (empty: it may).

    Keys: ``password``, ``maxmemory``, ``maxmemory_policy``, ``appendfsync``, ``memory`` (the container's
    limit), ``publish_address`` (empty: not published). The password itself never appears in a message.
    """
    problems: list[str] = []
    password = settings.get("password")
    if password is None or str(password) == "":
        problems.append(
            "redis_password is not set (rollout_redis_password): the durable queue's Redis never runs "
            "without a password; put one in a vault (e.g. vault_rollout_redis_password)"
        )
    elif not PASSWORD_PATTERN.match(str(password)):
        problems.append(
            "redis_password must be 16-512 characters of letters, digits and - . _ ~ (it goes into the "
            "routers' ROUTER_QUEUE_URL and into redis.conf as it is)"
        )
    policy = settings.get("maxmemory_policy")
    if policy != QUEUE_SAFE_POLICY:
        problems.append(
            f"redis_maxmemory_policy {policy!r} would let Redis evict queued messages; only "
            f"{QUEUE_SAFE_POLICY!r} is accepted (a full Redis refuses writes instead; the routers answer 503)"
        )
    if settings.get("appendfsync") not in APPENDFSYNC:
        problems.append(
            f"redis_appendfsync must be one of {', '.join(APPENDFSYNC)}, got {settings.get('appendfsync')!r}"
        )
    maxmemory = _size(problems, "redis_maxmemory", settings.get("maxmemory"), redis_bytes)
    if maxmemory == 0:
        problems.append("redis_maxmemory must be a limit above 0 (0 is Redis' 'no limit')")
    limit = _size(problems, "redis_memory", settings.get("memory"), docker_bytes)
    if maxmemory and limit is not None and limit < maxmemory * 3 // 2:
        problems.append(
            f"redis_memory ({settings.get('memory')}) must be at least 1.5 x redis_maxmemory "
            f"({settings.get('maxmemory')}): the AOF rewrite forks and buffers beside the data, and the "
            "kernel's OOM killer would end Redis before maxmemory does"
        )
    problems += _publish_problems(settings.get("publish_address") or "")
    return problems


def _size(problems: list[str], name: str, value: Any, parse: Any) -> int | None:
    try:
        return int(parse(value))
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
        return None


def _publish_problems(address: str) -> list[str]:
    if not address:
        return []
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return [f"redis_publish_address must be an IP address of this host, got {address!r}"]
    if parsed.is_unspecified:
        return [
            f"redis_publish_address {address} would publish Redis on every interface; name the address the "
            "routers of other hosts reach (and let the firewall admit only them), or leave it empty"
        ]
    return []


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_info(text: str) -> dict[str, Any]:
    """``INFO``'s answer as a dict: numbers as numbers, ``db0:keys=1,expires=0`` as a dict of numbers."""
    info: dict[str, Any] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        if re.fullmatch(r"db\d+", key):
            info[key] = {k: _value(v) for k, v in (p.split("=", 1) for p in value.split(",") if "=" in p)}
        else:
            info[key] = _value(value)
    return info


def parse_backlog(text: str, prefix: str) -> dict[str, Any]:
    """Lines ``<stream key> <length>`` (the routers' streams ``<prefix><class>:<priority>``) as the backlog.

    A stream's length is what it holds not yet acknowledged (the routers delete an entry when they
    acknowledge it): unread plus being delivered. Returns ``total``, ``by_class`` and ``streams``.
    """
    streams: dict[str, int] = {}
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) != 2 or not parts[0].startswith(prefix) or not parts[1].isdigit():
            continue
        streams[parts[0]] = int(parts[1])
    by_class: dict[str, int] = {}
    for key, length in streams.items():
        message_class = key[len(prefix) :].rsplit(":", 1)[0]
        by_class[message_class] = by_class.get(message_class, 0) + length
    return {
        "total": sum(streams.values()),
        "by_class": dict(sorted(by_class.items())),
        "streams": dict(sorted(streams.items())),
    }


def health(info: Mapping[str, Any], backlog: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What status reports of a running Redis, and ``problems``: why it cannot keep the queue safely."""
    used = int(info.get("used_memory", 0) or 0)
    maxmemory = int(info.get("maxmemory", 0) or 0)
    report: dict[str, Any] = {
        "up": True,
        "version": str(info.get("redis_version", "")),
        "aof_enabled": info.get("aof_enabled") == 1,
        "aof_last_write_status": str(info.get("aof_last_write_status", "")),
        "aof_last_bgrewrite_status": str(info.get("aof_last_bgrewrite_status", "")),
        "rdb_last_bgsave_status": str(info.get("rdb_last_bgsave_status", "")),
        "loading": info.get("loading") == 1,
        "used_memory": used,
        "used_memory_human": str(info.get("used_memory_human", "")),
        "maxmemory": maxmemory,
        "maxmemory_human": str(info.get("maxmemory_human", "")),
        "memory_used_ratio": round(used / maxmemory, 4) if maxmemory else None,
        "maxmemory_policy": str(info.get("maxmemory_policy", "")),
        "connected_clients": int(info.get("connected_clients", 0) or 0),
        "backlog": dict(backlog) if backlog is not None else {"total": 0, "by_class": {}, "streams": {}},
    }
    problems: list[str] = []
    if not report["aof_enabled"]:
        problems.append("AOF is off: a restart loses every queued message")
    for key in ("aof_last_write_status", "aof_last_bgrewrite_status", "rdb_last_bgsave_status"):
        if report[key] not in ("", "ok"):
            problems.append(f"{key} is {report[key]}")
    if report["maxmemory_policy"] != QUEUE_SAFE_POLICY:
        problems.append(
            f"maxmemory-policy is {report['maxmemory_policy'] or 'unknown'}: Redis may evict queued messages"
        )
    if not maxmemory:
        problems.append("no maxmemory: Redis grows until the container's memory limit kills it")
    elif used >= maxmemory * MEMORY_WARN_RATIO:
        problems.append(
            f"memory {report['used_memory_human'] or used} of {report['maxmemory_human'] or maxmemory} "
            f"(>= {MEMORY_WARN_RATIO:.0%}): a full Redis refuses new messages"
        )
    if report["loading"]:
        problems.append("loading its data (the AOF) after a start")
    report["problems"] = problems
    return report


def down(reason: str) -> dict[str, Any]:
    """The report of a Redis that could not be asked."""
    return {"up": False, "problems": [f"down: {reason}"]}
