"""Service configuration read from ``ROUTER_*`` environment variables.

Everything is parsed and validated once at start, so a bad deployment fails before it takes traffic and the
error names the variable to fix. The hot path only ever reads the resulting frozen ``Settings``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

MODES = ("shadow", "live")
SWITCHES = ("off", "on")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Versions and destination names end up in HTTP headers and Prometheus labels: keep them to a safe alphabet.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
FAULT_VARS = ("ROUTER_FAULT_LATENCY_MS", "ROUTER_FAULT_ERROR_RATE")


class ConfigError(ValueError):
    """A ``ROUTER_*`` variable holds a value the service refuses to start with."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    """Validated configuration; fault fields are already zeroed when fault injection is off."""

    version: str = "dev"
    mode: str = "live"
    host: str = "0.0.0.0"
    port: int = 8080
    fault_injection: bool = False
    fault_latency_ms: float = 0.0
    fault_error_rate: float = 0.0
    max_body_bytes: int = 64 * 1024
    destinations: tuple[str, ...] = ("dest-a", "dest-b")
    graceful_timeout_s: float = 8.0
    log_level: str = "INFO"

    @property
    def shadow(self) -> bool:
        """In shadow mode every request is a mirrored copy and must never be dispatched."""
        return self.mode == "shadow"


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """An unset and an empty variable mean the same: templated deployments often render unset as ''."""
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _choice(value: str, name: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    normalised = value.upper() if upper else value.lower()
    if normalised not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return normalised


def _int(value: str, name: str, low: int, high: int) -> int:
    try:
        number = int(value, 10)
    except ValueError:
        raise ConfigError(name, f"must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {number}")
    return number


def _float(value: str, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(name, f"must be a number, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ConfigError(name, f"must be between {low:g} and {high:g}, got {value!r}")
    return number


def _name(value: str, name: str) -> str:
    if not _NAME_RE.match(value):
        raise ConfigError(name, f"must match {_NAME_RE.pattern}, got {value!r}")
    return value


def _names(value: str, name: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in value.split(","))
    if any(not item for item in items):
        raise ConfigError(name, f"must be a comma-separated list of non-empty names, got {value!r}")
    for item in items:
        _name(item, name)
    return items


def _get(env: Mapping[str, str], name: str, default: T, parse: Callable[[str, str], T]) -> T:
    value = _raw(env, name)
    return default if value is None else parse(value, name)


def load_settings(env: Mapping[str, str]) -> Settings:
    """Parse and validate ``env``; raise ``ConfigError`` naming the first bad variable.

    Fault values are validated even when fault injection is off, so a typo is caught before someone turns it
    on; their values only take effect with ``ROUTER_FAULT_INJECTION=on``.
    """
    d = Settings()
    fault_injection = _get(env, "ROUTER_FAULT_INJECTION", "off", lambda v, n: _choice(v, n, SWITCHES)) == "on"
    latency = _get(env, "ROUTER_FAULT_LATENCY_MS", 0.0, lambda v, n: _float(v, n, 0.0, 60_000.0))
    error_rate = _get(env, "ROUTER_FAULT_ERROR_RATE", 0.0, lambda v, n: _float(v, n, 0.0, 1.0))
    return Settings(
        version=_get(env, "ROUTER_VERSION", d.version, _name),
        mode=_get(env, "ROUTER_MODE", d.mode, lambda v, n: _choice(v, n, MODES)),
        host=_get(env, "ROUTER_HOST", d.host, lambda v, n: v),
        port=_get(env, "ROUTER_PORT", d.port, lambda v, n: _int(v, n, 1, 65535)),
        fault_injection=fault_injection,
        fault_latency_ms=latency if fault_injection else 0.0,
        fault_error_rate=error_rate if fault_injection else 0.0,
        max_body_bytes=_get(
            env, "ROUTER_MAX_BODY_BYTES", d.max_body_bytes, lambda v, n: _int(v, n, 256, 16 << 20)
        ),
        destinations=_get(env, "ROUTER_DESTINATIONS", d.destinations, _names),
        graceful_timeout_s=_get(
            env, "ROUTER_GRACEFUL_TIMEOUT_S", d.graceful_timeout_s, lambda v, n: _float(v, n, 0, 300)
        ),
        log_level=_get(
            env, "ROUTER_LOG_LEVEL", d.log_level, lambda v, n: _choice(v, n, LOG_LEVELS, upper=True)
        ),
    )


def config_warnings(env: Mapping[str, str], settings: Settings) -> list[str]:
    """Settings that are legal but probably not what the operator meant; logged once at start."""
    warnings = []
    if _raw(env, "ROUTER_VERSION") is None:
        warnings.append("ROUTER_VERSION is not set: reporting version 'dev'")
    if not settings.fault_injection:
        ignored = [name for name in FAULT_VARS if _raw(env, name) is not None]
        if ignored:
            warnings.append(f"{', '.join(ignored)} ignored because ROUTER_FAULT_INJECTION is not 'on'")
    else:
        warnings.append(
            f"fault injection is ON: latency {settings.fault_latency_ms:g} ms, "
            f"error rate {settings.fault_error_rate:g}"
        )
    return warnings
