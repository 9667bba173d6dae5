"""Configuration: defaults, validation that names the variable, fault settings ignored unless enabled."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from router_app.config import ConfigError, Settings, config_warnings, load_settings


def test_defaults_are_safe() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert (settings.version, settings.mode, settings.port) == ("dev", "live", 8080)
    assert settings.fault_injection is False
    assert (settings.fault_latency_ms, settings.fault_error_rate) == (0.0, 0.0)
    assert settings.max_body_bytes == 65536
    assert settings.destinations == ("dest-a", "dest-b")


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "ROUTER_VERSION": "2.4.1-rc.1",
            "ROUTER_MODE": "Shadow",
            "ROUTER_PORT": "9090",
            "ROUTER_FAULT_INJECTION": "on",
            "ROUTER_FAULT_LATENCY_MS": "12.5",
            "ROUTER_FAULT_ERROR_RATE": "0.25",
            "ROUTER_MAX_BODY_BYTES": "1024",
            "ROUTER_DESTINATIONS": " east , west,north ",
        }
    )
    assert settings.version == "2.4.1-rc.1"
    assert settings.mode == "shadow" and settings.shadow
    assert settings.port == 9090
    assert (settings.fault_injection, settings.fault_latency_ms, settings.fault_error_rate) == (
        True,
        12.5,
        0.25,
    )
    assert settings.max_body_bytes == 1024
    assert settings.destinations == ("east", "west", "north")


def test_empty_value_means_default() -> None:
    assert load_settings({"ROUTER_MODE": "", "ROUTER_PORT": "  "}) == Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ROUTER_MODE", "canary"),
        ("ROUTER_PORT", "http"),
        ("ROUTER_PORT", "0"),
        ("ROUTER_PORT", "70000"),
        ("ROUTER_FAULT_INJECTION", "yes"),
        ("ROUTER_FAULT_LATENCY_MS", "-1"),
        ("ROUTER_FAULT_LATENCY_MS", "nan"),
        ("ROUTER_FAULT_LATENCY_MS", "fast"),
        ("ROUTER_FAULT_ERROR_RATE", "1.5"),
        ("ROUTER_FAULT_ERROR_RATE", "-0.1"),
        ("ROUTER_FAULT_ERROR_RATE", "inf"),
        ("ROUTER_MAX_BODY_BYTES", "64k"),
        ("ROUTER_MAX_BODY_BYTES", "10"),
        ("ROUTER_DESTINATIONS", "a,,b"),
        ("ROUTER_DESTINATIONS", "a b"),
        ("ROUTER_VERSION", "1.0\r\nX-Evil: 1"),
        ("ROUTER_VERSION", "v" * 65),
        ("ROUTER_GRACEFUL_TIMEOUT_S", "-3"),
        ("ROUTER_LOG_LEVEL", "chatty"),
        ("ROUTER_DESTINATIONS", "a=http://h:1,b"),
        ("ROUTER_DESTINATIONS", "a=ftp://h/x"),
        ("ROUTER_DESTINATIONS", "a=http://u:p@h/x"),
        ("ROUTER_DESTINATIONS", "a,a"),
        ("ROUTER_BREAKER_FAILURE_THRESHOLD", "0"),
        ("ROUTER_BREAKER_RECOVERY_S", "0"),
        ("ROUTER_QUEUE_CAPACITY", "0"),
        ("ROUTER_QUEUE_CAPACITY_BY_CLASS", "strategic"),
        ("ROUTER_QUEUE_WEIGHT_BY_CLASS", "tactical=0"),
        ("ROUTER_FLAGS", "least_loaded=101"),
        ("ROUTER_REDIS_URL", "http://redis:6379"),
        ("ROUTER_ADMIN_TOKEN", "short"),
        ("ROUTER_FAULT_LATENCY_MS_BY_CLASS", "strategic=-1"),
        ("ROUTER_RULES_FILE", "/nonexistent/rules.yaml"),
        ("ROUTER_DISPATCH_CONCURRENCY", "0"),
        ("ROUTER_IDEMPOTENCY_WINDOW_S", "0"),
        ("ROUTER_CONFIG_FILE", "/nonexistent/router.yaml"),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_fault_values_ignored_unless_enabled() -> None:
    env = {"ROUTER_FAULT_LATENCY_MS": "250", "ROUTER_FAULT_ERROR_RATE": "0.5"}
    settings = load_settings(env)
    assert settings.fault_injection is False
    assert (settings.fault_latency_ms, settings.fault_error_rate) == (0.0, 0.0)
    warnings = config_warnings(env, settings)
    assert any("ROUTER_FAULT_LATENCY_MS, ROUTER_FAULT_ERROR_RATE ignored" in w for w in warnings)

    off = load_settings({**env, "ROUTER_FAULT_INJECTION": "off"})
    assert (off.fault_latency_ms, off.fault_error_rate) == (0.0, 0.0)


def test_enabled_fault_injection_is_announced() -> None:
    env = {"ROUTER_FAULT_INJECTION": "on", "ROUTER_FAULT_ERROR_RATE": "0.5", "ROUTER_VERSION": "1"}
    warnings = config_warnings(env, load_settings(env))
    assert warnings == ["fault injection is ON: latency 0 ms, error rate 0.5"]


def test_unset_version_is_warned() -> None:
    assert "ROUTER_VERSION is not set" in config_warnings({}, Settings())[0]
    assert config_warnings({"ROUTER_VERSION": "1.0"}, Settings(version="1.0")) == []


def test_service_refuses_to_start_and_names_the_variable(root: Path, child_env: Callable[..., dict]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "router_app"],
        cwd=root,
        check=False,
        env=child_env({"ROUTER_MODE": "canary", "ROUTER_PORT": "1"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["level"] == "ERROR"
    assert record["variable"] == "ROUTER_MODE"
    assert "ROUTER_MODE" in record["msg"]


def test_engine_settings_from_env() -> None:
    settings = load_settings(
        {
            "ROUTER_DESTINATIONS": "a=http://127.0.0.1:9001/deliver, b=http://sink-b:9000/",
            "ROUTER_BREAKER_FAILURE_THRESHOLD": "5",
            "ROUTER_BREAKER_RECOVERY_S": "30",
            "ROUTER_QUEUE_CAPACITY_BY_CLASS": "strategic=100,tactical=500",
            "ROUTER_FLAGS": "least_loaded=25",
            "ROUTER_REDIS_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert settings.destinations == ("a", "b")
    assert settings.destination_urls == {"a": "http://127.0.0.1:9001/deliver", "b": "http://sink-b:9000/"}
    assert settings.dispatching is True
    assert (settings.breaker_failure_threshold, settings.breaker_recovery_s) == (5, 30.0)
    assert settings.queue_capacity_by_class == {"strategic": 100, "tactical": 500}
    assert settings.flags == {"least_loaded": 25.0, "predictive_load": 100.0}
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_breaker_defaults_are_the_shadow_phase_ones() -> None:
    settings = load_settings({})
    assert (settings.breaker_failure_threshold, settings.breaker_recovery_s) == (10, 60.0)
    assert settings.dispatching is False  # names without URLs: decide only


def write_yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "router.yaml"
    path.write_text(text)
    return str(path)


def test_yaml_file_is_read_and_env_wins(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
mode: shadow
listen: {port: 9000}
destinations: {a: "http://127.0.0.1:1/x", b: "http://127.0.0.1:2/x"}
breaker: {failure_threshold: 5, recovery_timeout_s: 30}
queues: {capacity: 50, capacity_by_class: {strategic: 10}, weight_by_class: {strategic: 4}}
idempotency: {window_s: 60}
flags: {predictive_load: 50}
faults: {enabled: true, latency_ms_by_class: {strategic: 20}}
""",
    )
    settings = load_settings({"ROUTER_CONFIG_FILE": path, "ROUTER_PORT": "9100"})
    assert settings.mode == "shadow"
    assert settings.port == 9100  # the environment overrides the file
    assert settings.destination_urls["b"] == "http://127.0.0.1:2/x"
    assert (settings.breaker_failure_threshold, settings.breaker_recovery_s) == (5, 30.0)
    assert (settings.queue_capacity, settings.queue_capacity_by_class) == (50, {"strategic": 10})
    assert settings.queue_weight_by_class == {"strategic": 4}
    assert settings.idempotency_window_s == 60.0
    assert settings.flags == {"least_loaded": 100.0, "predictive_load": 50.0}
    assert settings.fault_latency_ms_by_class == {"strategic": 20.0}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("breaker: {failure_threshold: many}", "breaker.failure_threshold"),
        ("breaker: {threshold: 3}", "breaker.threshold"),
        ("colour: red", "colour"),
        ("queues: 5", "queues"),
        ("queues: {capacity_by_class: {strategic: -1}}", "queues.capacity_by_class.strategic"),
        ("destinations: {a: 'ftp://x'}", "destinations.a"),
        ("listen: {port: true}", "listen.port"),
        ("- a list", "ROUTER_CONFIG_FILE"),
        ("mode: [", "ROUTER_CONFIG_FILE"),
    ],
)
def test_bad_yaml_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ROUTER_CONFIG_FILE": write_yaml(tmp_path, text)})
    assert caught.value.variable == field


def test_cross_field_errors_blame_the_source() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ROUTER_DEFAULT_TTL_MS": "5000", "ROUTER_MAX_TTL_MS": "1000"})
    assert caught.value.variable == "ROUTER_DEFAULT_TTL_MS"


def test_service_refuses_a_bad_rules_file(root: Path, child_env: Callable[..., dict], tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("classes: [a]\ndefault: {name: d, class: b, priority: 1}\nrules: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "router_app"],
        cwd=root,
        check=False,
        env=child_env({"ROUTER_RULES_FILE": str(rules), "ROUTER_PORT": "1"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["variable"] == "rules.yaml:default.class"
