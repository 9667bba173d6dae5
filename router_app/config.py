"""Service configuration: defaults, then an optional YAML file, then ``ROUTER_*`` environment variables.

Everything is parsed and validated once at start, so a bad deployment fails before it takes traffic and the
error names what to fix: the variable (``ROUTER_PORT``) or the YAML field (``breaker.failure_threshold``).
The hot path only ever reads the resulting frozen ``Settings``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

MODES = ("shadow", "live")
SWITCHES = ("off", "on")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Versions, destination and class names end up in HTTP headers and Prometheus labels: a safe alphabet only.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
FAULT_VARS = (
    "ROUTER_FAULT_LATENCY_MS",
    "ROUTER_FAULT_ERROR_RATE",
    "ROUTER_FAULT_LATENCY_MS_BY_CLASS",
    "ROUTER_FAULT_ERROR_RATE_BY_CLASS",
    "ROUTER_FAULT_MEMORY_GROWTH_KB",
)
CONFIG_FILE_VAR = "ROUTER_CONFIG_FILE"
MIN_ADMIN_TOKEN = 16


class ConfigError(ValueError):
    """A setting the service refuses to start with; ``variable`` names it (env var or YAML path)."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True, eq=True)
class Settings:
    """Validated configuration; fault fields are already zeroed when fault injection is off.

    Mapping fields are plain dicts: the object is frozen against reassignment and never hashed.
    """

    version: str = "dev"
    mode: str = "live"
    host: str = "0.0.0.0"
    port: int = 8080
    fault_injection: bool = False
    fault_latency_ms: float = 0.0
    fault_error_rate: float = 0.0
    fault_latency_ms_by_class: dict[str, float] = field(default_factory=dict)
    fault_error_rate_by_class: dict[str, float] = field(default_factory=dict)
    fault_memory_growth_kb: float = 0.0
    fault_memory_max_mb: float = 64.0
    admin_token: str | None = None
    max_body_bytes: int = 64 * 1024
    max_batch_size: int = 100
    max_request_line_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    keepalive_timeout_s: float = 5.0
    max_connections: int = 1024
    destinations: tuple[str, ...] = ("dest-a", "dest-b")
    # name -> URL; empty means decide-only: the engine answers where a message goes but dispatches nothing.
    destination_urls: dict[str, str] = field(default_factory=dict)
    rules_file: str | None = None
    default_ttl_ms: int = 30_000
    max_ttl_ms: int = 3_600_000
    queue_capacity: int = 10_000
    queue_capacity_by_class: dict[str, int] = field(default_factory=dict)
    queue_weight_by_class: dict[str, int] = field(default_factory=dict)
    breaker_failure_threshold: int = 10
    breaker_recovery_s: float = 60.0
    dispatch_concurrency: int = 32
    dispatch_timeout_s: float = 2.0
    dispatch_max_attempts: int = 3
    routing_ewma_alpha: float = 0.2
    routing_latency_weight: float = 1.0
    routing_load_weight: float = 1.0
    idempotency_window_s: float = 300.0
    idempotency_max_entries: int = 100_000
    redis_url: str | None = None
    redis_key_prefix: str = "msgroute:idem:"
    redis_timeout_s: float = 0.5
    # Durable queue (Redis Streams); None keeps the in-memory queue. See streams.py.
    queue_url: str | None = None
    queue_allow_no_password: bool = False
    queue_group: str = "msgroute"
    queue_stream_prefix: str = "msgroute:q:"
    queue_consumer: str | None = None
    queue_claim_idle_ms: int = 15_000
    flags: dict[str, float] = field(default_factory=lambda: {"least_loaded": 100.0, "predictive_load": 100.0})
    graceful_timeout_s: float = 8.0
    drain_timeout_s: float = 8.0
    log_level: str = "INFO"

    @property
    def shadow(self) -> bool:
        """In shadow mode every request is a mirrored copy and must never be dispatched."""
        return self.mode == "shadow"

    @property
    def durable(self) -> bool:
        """Whether accepted messages go to the durable queue shared by the pool (Redis Streams)."""
        return self.queue_url is not None and self.dispatching

    @property
    def dispatching(self) -> bool:
        """Whether messages are delivered at all (destinations have URLs)."""
        return bool(self.destination_urls)


# -- parsers: each takes the raw value (a string from the environment, any YAML scalar or collection from
#    the file) and the label to blame, and returns the typed value or raises ConfigError. ----------------


def _text(value: object, label: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(label, f"must be a string, got {type(value).__name__}")
    return str(value).strip()


def _choice(choices: tuple[str, ...], *, upper: bool = False) -> Callable[[object, str], str]:
    def parse(value: object, label: str) -> str:
        text = _text(value, label)
        normalised = text.upper() if upper else text.lower()
        if normalised not in choices:
            raise ConfigError(label, f"must be one of {', '.join(choices)}, got {text!r}")
        return normalised

    return parse


def _switch(value: object, label: str) -> bool:
    if isinstance(value, bool):  # YAML `on`/`true`
        return value
    return _choice(SWITCHES)(value, label) == "on"


def _int(low: int, high: int) -> Callable[[object, str], int]:
    def parse(value: object, label: str) -> int:
        if isinstance(value, bool | float):
            raise ConfigError(label, f"must be an integer, got {value!r}")
        try:
            number = value if isinstance(value, int) else int(_text(value, label), 10)
        except ValueError:
            raise ConfigError(label, f"must be an integer, got {value!r}") from None
        if not low <= number <= high:
            raise ConfigError(label, f"must be between {low} and {high}, got {number}")
        return number

    return parse


def _float(low: float, high: float, *, low_open: bool = False) -> Callable[[object, str], float]:
    def parse(value: object, label: str) -> float:
        if isinstance(value, bool):
            raise ConfigError(label, f"must be a number, got {value!r}")
        try:
            number = float(value) if isinstance(value, int | float) else float(_text(value, label))
        except ValueError:
            raise ConfigError(label, f"must be a number, got {value!r}") from None
        too_low = number <= low if low_open else number < low
        if not math.isfinite(number) or too_low or number > high:
            bracket = "(" if low_open else "["
            raise ConfigError(label, f"must be in {bracket}{low:g}, {high:g}], got {value!r}")
        return number

    return parse


def _name(value: object, label: str) -> str:
    text = _text(value, label)
    if not _NAME_RE.match(text):
        raise ConfigError(label, f"must match {_NAME_RE.pattern}, got {text!r}")
    return text


def _url(value: object, label: str) -> str:
    text = _text(value, label)
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(label, f"has an invalid port: {masked_url(text)!r}") from None
    if parts.scheme != "http" or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise ConfigError(
            label, f"must be http://HOST[:PORT][/PATH] without query or credentials, got {masked_url(text)!r}"
        )
    return text


_SECRET_PARAM = re.compile(r"([?&][^=&]*(?:pass|secret|token|auth)[^=&]*=)[^&#]*", re.IGNORECASE)


def masked_url(url: str) -> str:
    """``url`` safe to log: the userinfo (``user:password@``) and secret-looking query values masked."""
    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^@/?#]*@", r"\1***@", url)
    return _SECRET_PARAM.sub(r"\1***", url)


def _redis_url(value: object, label: str) -> str:
    text = _text(value, label)
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("redis", "rediss", "unix") and bool(parts.hostname or parts.path)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(label, f"must be a redis://HOST:PORT[/DB] URL, got {masked_url(text)!r}")
    return text


def url_has_password(url: str) -> bool:
    """A password in the userinfo (``redis://:pw@h``, ``redis://user:pw@h``) or as ``?password=``."""
    parts = urlsplit(url)
    if parts.password:
        return True
    return any(
        key == "password" and value for key, _, value in (p.partition("=") for p in parts.query.split("&"))
    )


def _optional_path(value: object, label: str) -> str:
    path = _text(value, label)
    if not Path(path).is_file():
        raise ConfigError(label, f"no such file: {path!r}")
    return path


def _token(value: object, label: str) -> str:
    text = _text(value, label)
    if len(text) < MIN_ADMIN_TOKEN:
        raise ConfigError(label, f"must be at least {MIN_ADMIN_TOKEN} characters long")
    return text


def _pairs(value: object, label: str) -> list[tuple[str, object]]:
    """``a=1,b=2`` (environment) or a YAML mapping -> list of (key, raw value)."""
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    text = _text(value, label)
    pairs = []
    for part in text.split(","):
        key, sep, item = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(label, f"must be a comma-separated list of NAME=VALUE, got {text!r}")
        pairs.append((key.strip(), item.strip()))
    return pairs


def _item(parse_value: Callable[[object, str], Any], item: object, label: str, key: str) -> Any:
    """Parse one entry of a mapping: a YAML error names ``path.key``, an environment one the variable."""
    if not label.startswith("ROUTER_"):
        return parse_value(item, f"{label}.{key}")
    try:
        return parse_value(item, label)
    except ConfigError as exc:
        raise ConfigError(label, f"{key}: {exc.problem}") from None


def _mapping(parse_value: Callable[[object, str], Any]) -> Callable[[object, str], dict[str, Any]]:
    def parse(value: object, label: str) -> dict[str, Any]:
        return {_name(key, label): _item(parse_value, item, label, key) for key, item in _pairs(value, label)}

    return parse


def _names(value: object, label: str) -> tuple[str, ...]:
    items = [str(v).strip() for v in value] if isinstance(value, list) else _text(value, label).split(",")
    items = [item.strip() for item in items]
    if not items or any(not item for item in items):
        raise ConfigError(label, f"must be a comma-separated list of non-empty names, got {value!r}")
    for item in items:
        _name(item, label)
    if len(set(items)) != len(items):
        raise ConfigError(label, f"names must be unique, got {value!r}")
    return tuple(items)


def _destinations(value: object, label: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """``a,b`` (decide only) or ``a=http://h:1/deliver,b=...`` / a YAML mapping (dispatch); not a mix."""
    if isinstance(value, Mapping) or (isinstance(value, str) and "=" in value):
        pairs = _pairs(value, label)
        names = _names([k for k, _ in pairs], label)
        urls = {k: _item(_url, v, label, k) for k, v in pairs if v not in (None, "")}
        if urls and len(urls) != len(names):
            raise ConfigError(label, "either every destination has a URL or none has")
        return names, urls
    return _names(value, label), {}


# -- the field table: settings field, environment variable, YAML path, parser -------------------------------


@dataclass(frozen=True)
class Spec:
    name: str
    env: str | None
    path: str | None
    parse: Callable[[object, str], Any]


SPECS: tuple[Spec, ...] = (
    Spec("version", "ROUTER_VERSION", "version", _name),
    Spec("mode", "ROUTER_MODE", "mode", _choice(MODES)),
    Spec("host", "ROUTER_HOST", "listen.host", _text),
    Spec("port", "ROUTER_PORT", "listen.port", _int(1, 65535)),
    Spec("fault_injection", "ROUTER_FAULT_INJECTION", "faults.enabled", _switch),
    Spec("fault_latency_ms", "ROUTER_FAULT_LATENCY_MS", "faults.latency_ms", _float(0.0, 60_000.0)),
    Spec("fault_error_rate", "ROUTER_FAULT_ERROR_RATE", "faults.error_rate", _float(0.0, 1.0)),
    Spec(
        "fault_latency_ms_by_class",
        "ROUTER_FAULT_LATENCY_MS_BY_CLASS",
        "faults.latency_ms_by_class",
        _mapping(_float(0.0, 60_000.0)),
    ),
    Spec(
        "fault_error_rate_by_class",
        "ROUTER_FAULT_ERROR_RATE_BY_CLASS",
        "faults.error_rate_by_class",
        _mapping(_float(0.0, 1.0)),
    ),
    Spec(
        "fault_memory_growth_kb", "ROUTER_FAULT_MEMORY_GROWTH_KB", "faults.memory_growth_kb", _float(0, 1024)
    ),
    Spec("fault_memory_max_mb", "ROUTER_FAULT_MEMORY_MAX_MB", "faults.memory_max_mb", _float(0, 4096)),
    # Secrets come from the environment only, never from a file that ends up in a repository.
    Spec("admin_token", "ROUTER_ADMIN_TOKEN", None, _token),
    Spec("max_body_bytes", "ROUTER_MAX_BODY_BYTES", "limits.max_body_bytes", _int(256, 16 << 20)),
    Spec("max_batch_size", "ROUTER_MAX_BATCH_SIZE", "limits.max_batch_size", _int(1, 10_000)),
    Spec(
        "max_request_line_bytes",
        "ROUTER_MAX_REQUEST_LINE_BYTES",
        "limits.max_request_line_bytes",
        _int(256, 1 << 20),
    ),
    Spec("max_header_bytes", "ROUTER_MAX_HEADER_BYTES", "limits.max_header_bytes", _int(1024, 1 << 20)),
    Spec("max_headers", "ROUTER_MAX_HEADERS", "limits.max_headers", _int(8, 1000)),
    Spec(
        "header_timeout_s",
        "ROUTER_HEADER_TIMEOUT_S",
        "limits.header_timeout_s",
        _float(0, 300, low_open=True),
    ),
    Spec("body_timeout_s", "ROUTER_BODY_TIMEOUT_S", "limits.body_timeout_s", _float(0, 300, low_open=True)),
    Spec(
        "keepalive_timeout_s",
        "ROUTER_KEEPALIVE_TIMEOUT_S",
        "limits.keepalive_timeout_s",
        _float(0, 300, low_open=True),
    ),
    Spec("max_connections", "ROUTER_MAX_CONNECTIONS", "limits.max_connections", _int(1, 1_000_000)),
    Spec("destinations", "ROUTER_DESTINATIONS", "destinations", _destinations),
    Spec("rules_file", "ROUTER_RULES_FILE", "rules_file", _optional_path),
    Spec("default_ttl_ms", "ROUTER_DEFAULT_TTL_MS", "queues.default_ttl_ms", _int(1, 86_400_000)),
    Spec("max_ttl_ms", "ROUTER_MAX_TTL_MS", "queues.max_ttl_ms", _int(1, 86_400_000)),
    Spec("queue_capacity", "ROUTER_QUEUE_CAPACITY", "queues.capacity", _int(1, 10_000_000)),
    Spec(
        "queue_capacity_by_class",
        "ROUTER_QUEUE_CAPACITY_BY_CLASS",
        "queues.capacity_by_class",
        _mapping(_int(1, 10_000_000)),
    ),
    Spec(
        "queue_weight_by_class",
        "ROUTER_QUEUE_WEIGHT_BY_CLASS",
        "queues.weight_by_class",
        _mapping(_int(1, 100)),
    ),
    Spec(
        "breaker_failure_threshold",
        "ROUTER_BREAKER_FAILURE_THRESHOLD",
        "breaker.failure_threshold",
        _int(1, 10_000),
    ),
    Spec(
        "breaker_recovery_s",
        "ROUTER_BREAKER_RECOVERY_S",
        "breaker.recovery_timeout_s",
        _float(0, 3600, low_open=True),
    ),
    Spec("dispatch_concurrency", "ROUTER_DISPATCH_CONCURRENCY", "dispatch.concurrency", _int(1, 1024)),
    Spec(
        "dispatch_timeout_s", "ROUTER_DISPATCH_TIMEOUT_S", "dispatch.timeout_s", _float(0, 60, low_open=True)
    ),
    Spec("dispatch_max_attempts", "ROUTER_DISPATCH_MAX_ATTEMPTS", "dispatch.max_attempts", _int(1, 10)),
    Spec(
        "routing_ewma_alpha", "ROUTER_ROUTING_EWMA_ALPHA", "routing.ewma_alpha", _float(0, 1, low_open=True)
    ),
    Spec(
        "routing_latency_weight", "ROUTER_ROUTING_LATENCY_WEIGHT", "routing.latency_weight", _float(0, 1000)
    ),
    Spec("routing_load_weight", "ROUTER_ROUTING_LOAD_WEIGHT", "routing.load_weight", _float(0, 1000)),
    Spec(
        "idempotency_window_s",
        "ROUTER_IDEMPOTENCY_WINDOW_S",
        "idempotency.window_s",
        _float(0, 86_400, low_open=True),
    ),
    Spec(
        "idempotency_max_entries",
        "ROUTER_IDEMPOTENCY_MAX_ENTRIES",
        "idempotency.max_entries",
        _int(1, 10_000_000),
    ),
    Spec("redis_url", "ROUTER_REDIS_URL", "idempotency.redis_url", _redis_url),
    Spec("redis_key_prefix", "ROUTER_REDIS_KEY_PREFIX", "idempotency.key_prefix", _text),
    Spec("redis_timeout_s", "ROUTER_REDIS_TIMEOUT_S", "idempotency.timeout_s", _float(0, 30, low_open=True)),
    Spec("queue_url", "ROUTER_QUEUE_URL", "queues.durable_url", _redis_url),
    Spec(
        "queue_allow_no_password",
        "ROUTER_QUEUE_ALLOW_NO_PASSWORD",
        "queues.durable_allow_no_password",
        _switch,
    ),
    Spec("queue_group", "ROUTER_QUEUE_GROUP", "queues.durable_group", _name),
    Spec("queue_stream_prefix", "ROUTER_QUEUE_STREAM_PREFIX", "queues.durable_stream_prefix", _text),
    Spec("queue_consumer", "ROUTER_QUEUE_CONSUMER", "queues.durable_consumer", _name),
    Spec(
        "queue_claim_idle_ms",
        "ROUTER_QUEUE_CLAIM_IDLE_MS",
        "queues.durable_claim_idle_ms",
        _int(200, 3_600_000),
    ),
    Spec("flags", "ROUTER_FLAGS", "flags", _mapping(_float(0.0, 100.0))),
    Spec("graceful_timeout_s", "ROUTER_GRACEFUL_TIMEOUT_S", "graceful_timeout_s", _float(0, 300)),
    Spec("drain_timeout_s", "ROUTER_DRAIN_TIMEOUT_S", "drain_timeout_s", _float(0, 300)),
    Spec("log_level", "ROUTER_LOG_LEVEL", "log_level", _choice(LOG_LEVELS, upper=True)),
)
_YAML_PATHS = {spec.path: spec for spec in SPECS if spec.path}
_YAML_SECTIONS = {path.split(".")[0] for path in _YAML_PATHS if "." in path}


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """An unset and an empty variable mean the same: templated deployments often render unset as ''."""
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML -> ``{"section.key": value}`` for known paths; unknown keys are errors naming the key."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if path in _YAML_PATHS:
            flat[path] = value
        elif not prefix and key in _YAML_SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(path, "must be a mapping")
            flat.update(_flatten(value, f"{path}."))
        else:
            raise ConfigError(path, "unknown setting")
    return flat


def read_config_file(path: str) -> dict[str, Any]:
    """The YAML file as ``{"section.key": value}``; any problem is a ConfigError naming the file or field."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(CONFIG_FILE_VAR, f"cannot read {path!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(CONFIG_FILE_VAR, f"{path!r} is not valid YAML: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ConfigError(CONFIG_FILE_VAR, f"{path!r} must hold a mapping at the top level")
    return _flatten(document)


def load_settings(env: Mapping[str, str]) -> Settings:
    """Defaults, then ``ROUTER_CONFIG_FILE`` (YAML), then the environment; raise ``ConfigError`` naming the
    first bad variable or YAML field.

    Fault values are validated even when fault injection is off, so a typo is caught before someone turns it
    on; they only take effect with fault injection on.
    """
    file_values: dict[str, Any] = {}
    config_file = _raw(env, CONFIG_FILE_VAR)
    if config_file is not None:
        file_values = read_config_file(config_file)
    values: dict[str, Any] = {}
    for spec in SPECS:
        raw_env = _raw(env, spec.env) if spec.env else None
        if raw_env is not None:
            values[spec.name] = spec.parse(raw_env, spec.env or spec.name)
        elif spec.path in file_values:
            values[spec.name] = spec.parse(file_values[spec.path], spec.path or spec.name)
    if "destinations" in values:
        values["destinations"], values["destination_urls"] = values["destinations"]
    settings = Settings(**values)
    return _finish(settings, env)


def _blame(env: Mapping[str, str], name: str) -> str:
    """Which source set field ``name`` (for errors found only when fields are combined)."""
    spec = next(s for s in SPECS if s.name == name)
    if spec.env and _raw(env, spec.env) is not None:
        return spec.env
    return spec.path or spec.name


def _finish(settings: Settings, env: Mapping[str, str]) -> Settings:
    """Cross-field checks, and fault settings zeroed unless fault injection is on."""
    if settings.default_ttl_ms > settings.max_ttl_ms:
        raise ConfigError(_blame(env, "default_ttl_ms"), "must not exceed the maximum TTL")
    if settings.max_request_line_bytes > settings.max_header_bytes:
        raise ConfigError(
            _blame(env, "max_request_line_bytes"), "must not exceed the request head limit (max_header_bytes)"
        )
    if settings.queue_url is not None:
        _check_durable_queue(settings, env)
    settings = _replace(settings, flags={**Settings().flags, **settings.flags})
    if not settings.fault_injection:
        settings = _replace(
            settings,
            fault_latency_ms=0.0,
            fault_error_rate=0.0,
            fault_latency_ms_by_class={},
            fault_error_rate_by_class={},
            fault_memory_growth_kb=0.0,
        )
    return settings


def _check_durable_queue(settings: Settings, env: Mapping[str, str]) -> None:
    """No default passwords: a queue that holds every accepted message is not left open by accident; and the
    idempotency window must live in the same Redis, because claim and enqueue are one atomic step there."""
    assert settings.queue_url is not None
    if not settings.queue_allow_no_password and not url_has_password(settings.queue_url):
        raise ConfigError(
            _blame(env, "queue_url"),
            "has no password (redis://:PASSWORD@HOST:PORT/DB or ?password=); a Redis without one is refused "
            "unless ROUTER_QUEUE_ALLOW_NO_PASSWORD=on (tests only)",
        )
    if settings.redis_url is not None and settings.redis_url != settings.queue_url:
        raise ConfigError(
            _blame(env, "redis_url"),
            "must be the same Redis as ROUTER_QUEUE_URL (or unset): the idempotency claim and the enqueue "
            "are one atomic step in the durable queue's Redis",
        )


def _replace(settings: Settings, **changes: Any) -> Settings:
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    values.update(changes)
    return Settings(**values)


def config_warnings(env: Mapping[str, str], settings: Settings) -> list[str]:
    """Settings that are legal but probably not what the operator meant; logged once at start."""
    warnings = []
    if _raw(env, "ROUTER_VERSION") is None and settings.version == "dev":
        warnings.append("ROUTER_VERSION is not set: reporting version 'dev'")
    if settings.queue_url is not None and not settings.dispatching:
        warnings.append("ROUTER_QUEUE_URL ignored: the destinations have no URLs (decide-only)")
    open_queue = settings.queue_allow_no_password and not url_has_password(settings.queue_url or "")
    if settings.durable and open_queue:
        warnings.append("the durable queue's Redis has no password (ROUTER_QUEUE_ALLOW_NO_PASSWORD=on)")
    if not settings.fault_injection:
        ignored = [name for name in FAULT_VARS if _raw(env, name) is not None]
        if ignored:
            warnings.append(f"{', '.join(ignored)} ignored because ROUTER_FAULT_INJECTION is not 'on'")
    else:
        warnings.append(
            f"fault injection is ON: latency {settings.fault_latency_ms:g} ms, "
            f"error rate {settings.fault_error_rate:g}"
            + (
                f", latency by class {settings.fault_latency_ms_by_class}"
                if settings.fault_latency_ms_by_class
                else ""
            )
            + (
                f", error rate by class {settings.fault_error_rate_by_class}"
                if settings.fault_error_rate_by_class
                else ""
            )
            + (
                f", memory growth {settings.fault_memory_growth_kb:g} KB/request"
                if settings.fault_memory_growth_kb
                else ""
            )
        )
    return warnings
