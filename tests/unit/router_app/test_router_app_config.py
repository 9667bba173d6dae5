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
