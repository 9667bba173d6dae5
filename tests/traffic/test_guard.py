"""The guard in nginx: Alertmanager's rollback alert for the version in force puts every lb back on legacy.

Both lb hosts serve 50 % of live traffic to the new pool with a 10 % mirror. First every webhook that must
change nothing is sent (hold, resolved and other-version alerts, forged or missing token, malformed JSON, a
body past the limit, GET): each is answered and counted, the weights stay. Then the firing rollback alert for
2.0.0 goes to both guards while kept-alive clients that never retry load them: weight and shadow drop to 0 in
the request (no reload), no client request is lost, the record is written. The decision lasts - repeats
change nothing, a PUT that would give the new pool traffic is refused, a restart or a reload still serves
legacy only - until DELETE /_msgroute/guard clears it.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from ansible_collections.msgroute.rollout.plugins.module_utils.traffic_runtime import (
    Client,
    RuntimeApiError,
    Values,
)

from tests.support.monitoring import alert, webhook
from tests.support.traffic_world import GUARD_TOKEN, LB1, LB2, LBS, applied, apply, docker, playbook

VERSION = "2.0.0"
WEBHOOKS = "msgroute_lb_guard_webhooks_total"
RESULTS = ("rolled_back", "ignored", "unauthorized", "malformed", "too_large", "method")


def post(lb, body: str | bytes, token: str | None = GUARD_TOKEN, method: str = "POST") -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, lb.guard_url, data=body, headers=headers, timeout=10)


def counted(lb) -> dict[str, float]:
    metrics = lb.metrics()
    return {result: metrics.value(WEBHOOKS, result=result) for result in RESULTS}


def admin(lb) -> Client:
    return Client(lb.container, 8081)


def wait_healthy(lb, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if lb.health() == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{lb.container} did not answer within {seconds} s")


@pytest.fixture(scope="module")
def armed(world):
    """Both lbs at 50 % new, 10 % shadow, no guard record (whatever an earlier run left)."""
    for lb in LBS:
        admin(lb).clear_guard("test_guard: start")
    applied(weight=50, shadow=10)
    for lb in LBS:
        assert lb.runtime()["new_weight"] == 50
    yield
    for lb in LBS:
        admin(lb).clear_guard("test_guard: done")
    applied(weight=0, shadow=0)


HOLD = alert(action="hold", name="MsgrouteLatencyAboveSla")
HARMLESS = {
    "hold alert": (lambda: post(LB1, webhook(HOLD)), 200, "ignored"),
    "resolved rollback alert": (lambda: post(LB1, webhook(alert(status="resolved"))), 200, "ignored"),
    "another version": (lambda: post(LB1, webhook(alert(version="1.9.9"))), 200, "ignored"),
    "no alerts": (lambda: post(LB1, webhook()), 200, "ignored"),
    "forged token": (
        lambda: post(LB1, webhook(alert()), token=secrets.token_urlsafe(30)),
        401,
        "unauthorized",
    ),
    "token one short": (lambda: post(LB1, webhook(alert()), token=GUARD_TOKEN[:-1]), 401, "unauthorized"),
    "missing token": (lambda: post(LB1, webhook(alert()), token=None), 401, "unauthorized"),
    "malformed JSON": (lambda: post(LB1, '{"alerts": [ {"status": "firing"'), 400, "malformed"),
    "JSON without alerts": (lambda: post(LB1, '{"status": "firing"}'), 400, "malformed"),
    "oversized body": (lambda: post(LB1, " " * (600 * 1024) + webhook(alert())), 413, "too_large"),
    "GET": (lambda: post(LB1, "", method="GET"), 405, "method"),
    "PUT": (lambda: post(LB1, webhook(alert()), method="PUT"), 405, "method"),
}


@pytest.mark.parametrize("case", list(HARMLESS))
def test_webhooks_that_must_not_act_change_nothing_and_are_counted(armed, case):
    send, status, result = HARMLESS[case]
    before_state, before_counts = LB1.runtime(), counted(LB1)
    response = send()
    assert response.status_code == status, response.text
    after_state = LB1.runtime()
    assert (after_state["new_weight"], after_state["shadow_percent"]) == (50, 10)
    assert after_state["generation"] == before_state["generation"]
    assert after_state["guard"] is None and not LB1.guard_file.exists()
    after_counts = counted(LB1)
    assert after_counts == {**before_counts, result: before_counts[result] + 1}
    assert LB1.metrics().value("msgroute_lb_guard_rolled_back") == 0


def test_refused_webhooks_are_logged_without_the_token(armed):
    post(LB1, webhook(alert()), token="forged-" + GUARD_TOKEN)
    logs = docker("logs", "--since", "60s", LB1.container).stderr
    assert "msgroute guard: refused a webhook from" in logs and "unauthorized (401)" in logs
    assert GUARD_TOKEN not in logs


@dataclass(frozen=True)
class Rollback:
    answers: dict[str, requests.Response]
    tallies: list[Any]
    loaded_before: dict[str, float]
    sent_at: float
    answered_at: float


@pytest.fixture(scope="module")
def rolled_back(armed):
    """The rollback alert reaches both guards (as Alertmanager sends it to every lb) under live load."""
    loaded_before = {lb.host: lb.runtime()["loaded_at"] for lb in LBS}
    loads = [lb.load(8, rate=120).start() for lb in LBS]
    try:
        time.sleep(1.5)
        sent_at = time.time()
        answers = {lb.host: post(lb, webhook(HOLD, alert())) for lb in LBS}
        answered_at = time.time()
        time.sleep(1.5)
    finally:
        tallies = [running.stop() for running in loads]
    return Rollback(answers, tallies, loaded_before, sent_at, answered_at)


def test_the_rollback_alert_sets_weight_and_shadow_to_0(rolled_back):
    for lb in LBS:
        answer = rolled_back.answers[lb.host]
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["result"] == "rolled_back" and body["persisted"] is True
        state = lb.runtime()
        assert (state["new_weight"], state["shadow_percent"]) == (0, 0)
        assert state["version"] == VERSION and state["guard_in_force"] is True
        record = state["guard"]
        assert record == body["record"]
        assert {k: record[k] for k in ("active", "version", "alert", "phase", "value", "threshold")} == {
            "active": True,
            "version": VERSION,
            "alert": "MsgrouteLatencyAboveTrigger",
            "phase": "partial",
            "value": "81.2ms",
            "threshold": "65ms",
        }
        assert record["weights_before"] == {"new_weight": 50, "shadow_percent": 10}
        assert rolled_back.sent_at - 1 <= record["at"] <= rolled_back.answered_at + 1
        metrics = lb.metrics()
        assert metrics.value("msgroute_lb_new_weight") == 0
        assert metrics.value("msgroute_lb_shadow_percent") == 0
        assert metrics.value("msgroute_lb_guard_rolled_back") == 1
        assert metrics.value("msgroute_lb_guard_rolled_back_timestamp_seconds") == pytest.approx(
            record["at"], abs=0.01
        )
        assert metrics.value(WEBHOOKS, result="rolled_back") == 1


def test_no_kept_alive_request_was_lost_and_nginx_did_not_reload(rolled_back):
    for tally in rolled_back.tallies:
        assert tally.requests > 200, tally.snapshot()
        assert tally.failed == 0, tally.snapshot()
        assert tally.by_pool["new"] > 0 and tally.by_pool["legacy"] > 0, tally.snapshot()
    for lb in LBS:
        assert lb.runtime()["loaded_at"] == rolled_back.loaded_before[lb.host]


def test_traffic_goes_to_legacy_only(rolled_back):
    for lb in LBS:
        mirrored_before = sum(lb.metrics().by_label("msgroute_lb_mirror_requests_total", "result").values())
        tally = lb.send(300, concurrency=6)
        assert tally.failed == 0, tally.snapshot()
        assert dict(tally.by_pool) == {"legacy": 300}, tally.snapshot()
        mirrored_after = sum(lb.metrics().by_label("msgroute_lb_mirror_requests_total", "result").values())
        assert mirrored_after == mirrored_before


def test_the_record_is_persisted_and_the_rollback_logged(rolled_back):
    for lb in LBS:
        assert json.loads(lb.guard_file.read_text()) == rolled_back.answers[lb.host].json()["record"]
        assert not list(lb.guard_file.parent.glob("*.tmp"))
        assert oct(lb.guard_file.parent.stat().st_mode & 0o777) == "0o700"
        logs = docker("logs", lb.container).stderr
        line = (
            "msgroute guard: rolled back version 2.0.0 on alert MsgrouteLatencyAboveTrigger (phase partial): "
        )
        assert line + "value 81.2ms, threshold 65ms" in logs
        assert GUARD_TOKEN not in logs
    # nginx.conf holds a digest of the token, never the token.
    assert GUARD_TOKEN not in LB1.conf.read_text()


def test_repeats_change_nothing(rolled_back):
    record = LB1.runtime()["guard"]
    before = counted(LB1)
    for attempt in range(3):
        response = post(LB1, webhook(alert()))
        assert response.status_code == 200 and response.json()["result"] == "ignored", (
            attempt,
            response.text,
        )
    assert LB1.runtime()["guard"] == record
    assert counted(LB1) == {**before, "ignored": before["ignored"] + 3}


def test_a_put_that_gives_the_new_pool_traffic_is_refused(rolled_back):
    for values in (Values(25, 0), Values(0, 5)):
        with pytest.raises(RuntimeApiError, match=r"409 version 2\.0\.0 was rolled back by the guard"):
            LB1.set_runtime(values.new_weight, values.shadow_percent)
    assert LB1.set_runtime(0, 0)["new_weight"] == 0


def test_the_role_cannot_overwrite_the_guard_s_decision(rolled_back):
    """A switch to 25 % fails on nginx's refusal and both lb hosts go back to what they served (legacy)."""
    run = apply(weight=25, shadow=0)
    assert run.returncode != 0
    assert "409 version 2.0.0 was rolled back by the guard" in run.output
    for lb in LBS:
        state = lb.runtime()
        assert (state["new_weight"], state["shadow_percent"], state["guard_in_force"]) == (0, 0, True)
        # The role put the last-known-good nginx.conf back.
        runtime = lb.conf_runtime()
        assert (runtime["new_weight"], runtime["shadow_percent"]) == (50, 10)


def test_the_traffic_status_names_the_guard_s_rollback(rolled_back):
    run = playbook("status.yml")
    assert run.returncode == 0, run.output[-3000:]
    # The YAML callback wraps long messages.
    output = " ".join(run.output.split())
    for lb in LBS:
        assert f"GUARD {lb.host} in_force=True version=2.0.0" in output
        assert f"{lb.host}: nginx serves" in output
    assert output.count("; rolled back by guard: MsgrouteLatencyAboveTrigger (81.2ms over 65ms).") == len(LBS)


def test_a_restart_still_serves_legacy_only(rolled_back):
    # nginx.conf still carries the weights of the last switch (50/10): init must honour the record instead.
    runtime = LB1.conf_runtime()
    assert (runtime["new_weight"], runtime["shadow_percent"]) == (50, 10)
    docker("restart", LB1.container)
    wait_healthy(LB1)
    state = LB1.runtime()
    assert (state["new_weight"], state["shadow_percent"], state["guard_in_force"]) == (0, 0, True)
    assert LB1.metrics().value("msgroute_lb_guard_rolled_back") == 1
    tally = LB1.send(200, concurrency=4)
    assert dict(tally.by_pool) == {"legacy": 200}, tally.snapshot()


def test_a_reload_still_serves_legacy_only(rolled_back):
    loaded_before = LB2.runtime()["loaded_at"]
    docker("exec", LB2.container, "nginx", "-e", "stderr", "-c", str(LB2.conf), "-s", "reload")
    deadline = time.monotonic() + 20
    while LB2.runtime()["loaded_at"] == loaded_before and time.monotonic() < deadline:
        time.sleep(0.2)
    state = LB2.runtime()
    assert state["loaded_at"] != loaded_before
    assert (state["new_weight"], state["shadow_percent"], state["guard_in_force"]) == (0, 0, True)
    tally = LB2.send(200, concurrency=4)
    assert dict(tally.by_pool) == {"legacy": 200}, tally.snapshot()


def test_delete_clears_the_record_then_a_put_works(rolled_back):
    for lb in LBS:
        record = lb.runtime()["guard"]
        state = admin(lb).clear_guard("test_guard: new shadow run")
        assert state["guard"] is None and state["guard_in_force"] is False
        # The record cleared, marked inactive with why and when, is kept beside (guard.cleared.json).
        cleared = state["cleared"]
        assert cleared == {
            **record,
            "active": False,
            "cleared_reason": "test_guard: new shadow run",
            "cleared_at": cleared["cleared_at"],
        }
        assert cleared["cleared_at"] >= record["at"]
        assert not lb.guard_file.exists()
        assert json.loads((lb.guard_file.parent / "guard.cleared.json").read_text()) == cleared
        assert lb.metrics().value("msgroute_lb_guard_rolled_back") == 0
        assert lb.set_runtime(25, 5)["new_weight"] == 25
