"""Role monitoring's Alertmanager and Prometheus, for real: rollback alerts reach every lb's guard with the
bearer token, hold alerts never do, nothing answers without basic auth, and amtool stops a broken receiver
before it goes live. The order matters only for the last test, which changes the configuration (and fails)."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
import requests

from tests.monitoring.world import ALERTMANAGER, CONFIG_DIR, PROMETHEUS, World
from tests.support.monitoring import prometheus_query

ROLLBACK = "MsgrouteLatencyAboveTrigger"
HOLD = "MsgrouteLatencyAboveSLA"


def test_a_firing_rollback_alert_reaches_every_guard_with_the_bearer_token(world: World) -> None:
    world.post_alert(ROLLBACK, "rollback")
    for guard in world.guards:
        post = guard.wait_for(ROLLBACK)
        assert post["authorization"] == f"Bearer {world.token}"
        assert post["body"]["status"] == "firing"
        alert = next(a for a in post["body"]["alerts"] if a["labels"]["alertname"] == ROLLBACK)
        assert alert["labels"]["rollout_action"] == "rollback"
        assert alert["labels"]["version"] == "2.0.0"
    # The guard's route continues: the user's receiver gets the rollback too, without the guard's token.
    assert world.user_hook.wait_for(ROLLBACK)["authorization"] is None


def test_a_hold_alert_goes_to_the_user_and_never_to_a_guard(world: World) -> None:
    world.post_alert(HOLD, "hold")
    world.user_hook.wait_for(HOLD)
    # By the time the user's receiver has it, a guard route would have sent it too (same group_wait).
    for guard in world.guards:
        assert all(a["labels"]["rollout_action"] == "rollback" for a in guard.alerts())


def test_prometheus_sends_its_own_alerts_to_alertmanager_with_basic_auth(world: World) -> None:
    # Nothing answers at the lbs' metrics port: the hold alert that says the rules are blind fires in
    # Prometheus and reaches the user's receiver through Alertmanager (Prometheus signs in to it).
    post = world.user_hook.wait_for("MsgrouteLbMetricsMissing", timeout=90)
    assert post["body"]["status"] == "firing"
    assert all(
        a["labels"]["alertname"] != "MsgrouteLbMetricsMissing" for g in world.guards for a in g.alerts()
    )


@pytest.mark.parametrize("auth", [None, ("msgroute", "wrong-password"), ("someone", "x")])
def test_silences_and_queries_without_the_credentials_are_refused(
    world: World, auth: tuple[str, str] | None
) -> None:
    silence = {
        "matchers": [{"name": "rollout_action", "value": "rollback", "isRegex": False}],
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "intruder",
        "comment": "switch the guard off",
    }
    assert (
        requests.post(f"{ALERTMANAGER}/api/v2/silences", json=silence, auth=auth, timeout=5).status_code
        == 401
    )
    query = requests.get(f"{PROMETHEUS}/api/v1/query", params={"query": "up"}, auth=auth, timeout=5)
    assert query.status_code == 401
    silences = requests.get(f"{ALERTMANAGER}/api/v2/silences", auth=world.auth, timeout=5).json()
    assert all(s["createdBy"] != "intruder" for s in silences)


def test_with_the_credentials_a_silence_and_a_query_work(world: World) -> None:
    silence = {
        "matchers": [{"name": "alertname", "value": "MsgrouteMaintenance", "isRegex": False}],
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "operator",
        "comment": "maintenance",
    }
    created = requests.post(f"{ALERTMANAGER}/api/v2/silences", json=silence, auth=world.auth, timeout=5)
    assert created.status_code == 200, created.text
    silence_id = created.json()["silenceID"]
    deleted = requests.delete(f"{ALERTMANAGER}/api/v2/silence/{silence_id}", auth=world.auth, timeout=5)
    assert deleted.status_code == 200
    assert prometheus_query("vector(1)", PROMETHEUS, world.auth)[0]["value"][1] == "1"


def test_secrets_are_readable_by_the_servers_user_only(world: World) -> None:
    for path in (
        CONFIG_DIR / "alertmanager" / "guard_token",
        CONFIG_DIR / "prometheus" / "alertmanager_password",
    ):
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o400
        assert info.st_uid == 65534
    for directory in (CONFIG_DIR / "alertmanager", CONFIG_DIR / "prometheus"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750
    configs = [CONFIG_DIR / "alertmanager" / "alertmanager.yml", CONFIG_DIR / "alertmanager" / "web.yml"]
    for path in configs:
        text = path.read_text()
        assert world.token not in text
        assert world.password not in text


def test_a_second_run_changes_nothing(world: World) -> None:
    again = world.apply()
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed("am-mon") == 0, again.output[-3000:]


def test_a_broken_receiver_is_refused_by_amtool_and_the_running_config_stays(
    world: World, container_started_at
) -> None:
    live = CONFIG_DIR / "alertmanager" / "alertmanager.yml"
    before = hashlib.sha256(live.read_bytes()).hexdigest()
    started = container_started_at("am-alertmanager")
    receivers = (
        '{"monitoring_alertmanager_receivers": [{"name": "user-hook", "webhook_configs": [{"url": '
        f'"http://{world.env["MSGROUTE_AM_GUARD_HOST"]}:{world.user_hook.port}/user"}}]}}, '
        '{"name": "pager", "pagerduty_configs": [{"routing_key": "pd-SECRET-key-123", "no_such_field": 1}]}]}'
    )
    broken = world.apply("-e", receivers)
    assert broken.returncode != 0
    assert "alertmanager.yml refused, the running configuration is untouched" in broken.output
    assert "no_such_field" in broken.output  # amtool's reason
    assert "pd-SECRET-key-123" not in broken.output
    assert hashlib.sha256(live.read_bytes()).hexdigest() == before
    assert container_started_at("am-alertmanager") == started
    status = requests.get(f"{ALERTMANAGER}/api/v2/status", auth=world.auth, timeout=5).json()
    assert "pd-SECRET-key-123" not in status["config"]["original"]
    assert not any(
        name.startswith("alertmanager.yml.") and "stag" in name for name in os.listdir(live.parent)
    )
