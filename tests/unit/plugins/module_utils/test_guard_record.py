"""The guard's record as the lbs report it: which stand, and the one reason every consumer prints."""

from __future__ import annotations

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils import guard_record as gr

from tests.unit.plugins.module_utils.guard_samples import AT, REASON, VERSION, guard


def test_the_reason_names_alert_value_threshold_and_utc_time():
    assert gr.reason(guard()) == REASON


def test_a_record_without_figures_or_time_still_gives_a_reason():
    text = gr.reason(guard(value=None, threshold="", at="soon", alert=None))
    assert text == "rolled back by guard: an alert (? vs ?) at an unknown time"


@pytest.mark.parametrize("at", [float("nan"), float("inf"), 1e30, True, None])
def test_a_time_that_is_no_moment_is_unknown(at):
    assert gr.utc_time(at) == "an unknown time"


@pytest.mark.parametrize("value", [None, [], [None]])
def test_no_record(value):
    assert gr.records(value) == []
    assert gr.active(value, VERSION) == []


def test_one_record_or_a_list_of_them():
    assert gr.records(guard()) == [guard()]
    assert gr.records([guard(), None, guard(lb="lb2")]) == [guard(), guard(lb="lb2")]


@pytest.mark.parametrize("value", ["active", 3, ["not a record"]])
def test_anything_else_is_refused(value):
    with pytest.raises(ValueError, match="guard"):
        gr.records(value)


def test_only_an_active_record_of_the_version_stands():
    cleared = guard(active=False)
    other = guard(version="1.9.0")
    truthy_but_not_true = guard(active="yes")
    assert gr.active([cleared, other, truthy_but_not_true], VERSION) == []
    assert gr.active([cleared, other]) == [other]


def test_the_oldest_standing_record_comes_first():
    later = guard(lb="lb2", at=AT + 30)
    assert [r["lb"] for r in gr.active([later, guard()], VERSION)] == ["lb1", "lb2"]


def test_the_weight_taken_away():
    assert gr.weight_before(guard()) == 50
    assert gr.weight_before(guard(weights_before=None)) == 0


def test_the_history_keeps_which_lb_alert_figures_and_when():
    kept = gr.summary(guard())
    assert kept == {
        "lb": "lb1",
        "alert": "MsgrouteLatencyAboveTrigger",
        "value": "81.2ms",
        "threshold": "65ms",
        "at": AT,
        "summary": "p95 of the new pool above the rollback trigger",
        "time": "2025-12-02T07:20:00Z",
    }


# ---------------------------------------------------------------------- silences that pause the guard


def silence(*matchers: tuple[str, str, bool, bool], state: str = "active") -> dict:
    """An Alertmanager API v2 silence; each matcher is (name, value, isRegex, isEqual)."""
    return {
        "id": "5e1",
        "status": {"state": state},
        "matchers": [{"name": n, "value": v, "isRegex": r, "isEqual": e} for n, v, r, e in matchers],
        "createdBy": "ops",
        "comment": "planned maintenance",
        "startsAt": "2026-12-02T07:00:00Z",
        "endsAt": "2026-12-02T09:00:00Z",
    }


ROLLBACK = ("rollout_action", "rollback", False, True)


@pytest.mark.parametrize(
    "matchers",
    [
        [ROLLBACK],  # the documented maintenance silence
        [ROLLBACK, ("version", VERSION, False, True)],
        [("rollout_action", "roll.*", True, True)],
        [("alertname", "MsgrouteLatencyAboveTrigger", False, True)],
        [("alertname", "Msgroute.+", True, True)],
        [("severity", "critical", False, True)],  # another label: it may match, so it may pause
        [("rollout_action", "hold", False, False)],  # rollout_action != hold
    ],
)
def test_an_active_silence_that_may_match_a_rollback_alert_pauses_the_guard(matchers):
    assert gr.pauses_guard(silence(*matchers), VERSION)


@pytest.mark.parametrize(
    "matchers",
    [
        [("rollout_action", "hold", False, True)],
        [ROLLBACK, ("version", "1.9.0", False, True)],  # another release's alerts
        [("alertname", "DiskAlmostFull", False, True)],
        [("rollout_action", "rollback", False, False)],  # rollout_action != rollback
        [("rollout_action", "(", True, True)],  # a regex Alertmanager would refuse matches nothing
    ],
)
def test_a_silence_that_cannot_match_a_rollback_alert_does_not(matchers):
    assert not gr.pauses_guard(silence(*matchers), VERSION)


@pytest.mark.parametrize("state", ["expired", "pending", None])
def test_only_an_active_silence_pauses(state):
    assert not gr.pauses_guard(silence(ROLLBACK, state=state), VERSION)


def test_the_summary_shows_matchers_as_amtool_writes_them():
    found = gr.pausing_silences(
        [silence(ROLLBACK, ("version", "2\\..*", True, True), ("phase", "shadow", False, False))], VERSION
    )
    assert found == [
        {
            "id": "5e1",
            "matchers": "rollout_action=rollback, version=~2\\..*, phase!=shadow",
            "created_by": "ops",
            "comment": "planned maintenance",
            "ends_at": "2026-12-02T09:00:00Z",
        }
    ]


@pytest.mark.parametrize("value", [None, "silences", {"id": "x"}, 3])
def test_silences_must_be_alertmanagers_list(value):
    with pytest.raises(ValueError, match="silences must be a list"):
        gr.pausing_silences(value)


def test_items_that_are_no_silence_are_skipped():
    assert gr.pausing_silences([None, "x", {"status": "active"}, silence(ROLLBACK, state="expired")]) == []
