"""The run's plan: every setting refused on the controller, naming it, before anything changes."""

from __future__ import annotations

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.plan import (
    PlanError,
    check_watch,
    plan_run,
    whole_number,
)

GOOD = {
    "weight": None,
    "steps": [25, 50, 75],
    "shadow_percent": 10,
    "thresholds": {"partial": {"min_requests": 40}},
    "analysis": {"partial": {"interval": 5, "count": 3, "window": "5s"}},
    "new_instances": 2,
    "legacy_instances": 1,
    "ports": {"traffic_listen_port": 18080},
}


def refused(phase: str, **changes) -> list[str]:
    with pytest.raises(PlanError) as caught:
        plan_run(phase, {**GOOD, **changes})
    assert str(caught.value).startswith("Refusing the run before anything changes")
    return caught.value.problems


def test_partial_plan_carries_the_steps_and_the_resolved_gate():
    plan = plan_run("partial", GOOD)
    assert [s["weight"] for s in plan["steps"]] == [25, 50, 75]
    assert {s["phase"] for s in plan["steps"]} == {"partial"}
    assert plan["gates"]["partial"]["thresholds"]["max_p95_ms"] == 48
    assert plan["gates"]["partial"]["thresholds"]["min_requests"] == 40
    assert plan["gates"]["partial"]["analysis"] == {"interval": 5.0, "count": 3, "window": "5s"}
    # Every phase's gate is resolved: status.yml and validate.yml measure the phase the state names.
    assert plan["gates"]["full"]["thresholds"]["max_p95_ms"] == 50
    assert plan["gates"]["shadow"]["analysis"] == {}


def test_a_single_weight_overrides_the_steps_and_strings_from_extra_vars_pass():
    plan = plan_run("partial", {**GOOD, "weight": "50"})
    assert plan["steps"] == [{"phase": "partial", "weight": 50, "shadow_percent": 0}]


def test_shadow_and_full_plans():
    assert plan_run("shadow", GOOD)["steps"] == [{"phase": "shadow", "weight": 0, "shadow_percent": 10}]
    assert plan_run("full", GOOD)["steps"] == [{"phase": "full", "weight": 100, "shadow_percent": 0}]


@pytest.mark.parametrize("weight", [0, 100, 120, -5, "abc", "25.5", 25.5, True, ""])
def test_partial_weights_outside_1_to_99_are_refused(weight):
    problems = refused("partial", weight=weight)
    assert any("Partial steps must be whole percentages from 1 to 99" in p for p in problems)


@pytest.mark.parametrize("steps", [[], "25", [50, 25], [25, 25], None])
def test_steps_must_be_a_rising_list(steps):
    assert any("rollout_steps" in p or "Partial steps" in p for p in refused("partial", steps=steps))


@pytest.mark.parametrize("percent", [0, 101, 150, -1, "x", None, 10.5])
def test_shadow_percent_outside_1_to_100_is_refused(percent):
    assert any(p.startswith("rollout_shadow_percent") for p in refused("shadow", shadow_percent=percent))


@pytest.mark.parametrize("percent", [1, 100, "100"])
def test_shadow_percent_at_the_bounds_passes(percent):
    assert plan_run("shadow", {**GOOD, "shadow_percent": percent})["steps"][0]["shadow_percent"] == int(
        percent
    )


@pytest.mark.parametrize(
    ("thresholds", "needle"),
    [
        ({"partial": {"max_p95_ms": -1}}, "rollout_thresholds.partial: thresholds.max_p95_ms"),
        ({"partial": {"max_p95_ms": "fast"}}, "max_p95_ms: expected a number"),
        ({"partial": {"max_p95_ms": "nan"}}, "max_p95_ms"),
        ({"full": {"min_success_rate": 101}}, "rollout_thresholds.full"),
        ({"shadow": {"min_requests": -3}}, "rollout_thresholds.shadow"),
        ({"shadow": {"p95": 40}}, "thresholds.p95: unknown field"),
        ({"canary": {"max_p95_ms": 40}}, "rollout_thresholds.canary: unknown phase"),
        ({"partial": 40}, "rollout_thresholds.partial: expected a mapping"),
        ([1, 2], "rollout_thresholds: expected a mapping"),
    ],
)
def test_bad_thresholds_are_refused_for_any_phase_naming_the_setting(thresholds, needle):
    # A typo in the full phase's thresholds is refused already in shadow, not days later at full.
    problems = refused("shadow", thresholds=thresholds)
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    ("analysis", "needle"),
    [
        ({"partial": {"count": -1}}, "rollout_analysis.partial.count"),
        ({"partial": {"count": 0}}, "rollout_analysis.partial.count"),
        ({"partial": {"count": "three"}}, "rollout_analysis.partial.count: \"'three'\" cannot be converted"),
        ({"partial": {"interval": -5}}, "rollout_analysis.partial.interval"),
        ({"partial": {"interval": "inf"}}, "rollout_analysis.partial.interval"),
        ({"full": {"failure_limit": -2}}, "rollout_analysis.full.failure_limit"),
        ({"full": {"window": "5 minutes"}}, "rollout_analysis.full.window"),
        ({"full": {"windw": "5m"}}, "rollout_analysis.full.windw: unknown analysis setting"),
        # Limits that could never trigger within count are refused, as Argo Rollouts does.
        ({"partial": {"count": 1, "failure_limit": 2}}, "rollout_analysis.partial.count: 1 must be >="),
        (
            {"partial": {"count": 3, "failure_limit": 2, "consecutive_success_limit": 2}},
            "rollout_analysis.partial.count: 3 must be >= failure_limit + consecutive_success_limit",
        ),
        ({"partial": {"count": 1, "inconclusive_limit": 2}}, "rollout_analysis.partial.count: 1 must be >="),
    ],
)
def test_bad_analysis_settings_are_refused(analysis, needle):
    problems = refused("partial", analysis=analysis)
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    ("field", "value"), [("new_instances", 0), ("new_instances", None), ("new_instances", "x")]
)
def test_a_run_needs_a_new_instance(field, value):
    assert any("router_instances" in p for p in refused("partial", **{field: value}))


def test_every_run_needs_a_legacy_instance_even_a_rollback():
    assert any("legacy pool" in p for p in refused("rollback", legacy_instances=0))


def test_a_rollback_is_not_refused_for_thresholds_or_steps():
    plan = plan_run("rollback", {**GOOD, "thresholds": {"partial": {"max_p95_ms": -1}}, "weight": 150})
    assert plan == {"phase": "rollback", "steps": [], "gates": {}}


@pytest.mark.parametrize("port", [0, 65536, -1, "http", 80.5])
def test_ports_outside_1_to_65535_are_refused(port):
    assert any(
        p.startswith("traffic_listen_port") for p in refused("full", ports={"traffic_listen_port": port})
    )


def test_every_problem_is_listed_at_once():
    problems = refused("shadow", shadow_percent=150, new_instances=0, thresholds={"full": {"max_p95_ms": -1}})
    assert len(problems) == 3


def test_an_unknown_phase_is_refused():
    with pytest.raises(PlanError, match="unknown phase 'canary'"):
        plan_run("canary", GOOD)


@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("7", 7), (" 9 ", 9), (3.0, 3)])
def test_whole_number_accepts_whole_values(value, expected):
    assert whole_number("n", value, 1, 10) == expected


def test_a_status_run_plans_no_step_but_every_gate():
    plan = plan_run("status", {**GOOD, "weight": 150})
    assert plan["steps"] == []
    assert set(plan["gates"]) == {"shadow", "partial", "full"}


# -- rollback triggers and alert timing ----------------------------------------------------------------------


def test_the_plan_carries_every_phase_s_triggers_beside_its_sla():
    plan = plan_run("partial", GOOD)
    partial = plan["gates"]["partial"]
    assert partial["thresholds"]["max_p95_ms"] == 48
    assert partial["triggers"]["max_p95_ms"] == 65
    assert partial["triggers"]["min_success_rate"] == 98
    assert partial["triggers"]["max_open_breakers"] == 0
    assert {p: g["triggers"]["max_p95_ms"] for p, g in plan["gates"].items()} == {
        "shadow": 65,
        "partial": 65,
        "full": 65,
    }
    assert plan["alerting"]["for"]["latency"] == "5m"
    assert plan["alerting"]["for"]["success"] == "3m"
    assert plan["alerting"]["for"]["breakers"] == "0s"


def test_trigger_and_alerting_overrides_are_applied():
    plan = plan_run(
        "status",
        {
            **GOOD,
            "triggers": {"full": {"max_p95_ms": "80", "max_memory_mb": None}},
            "alerting": {"rate_window": "5s", "for": {"latency": "5s"}},
        },
    )
    assert plan["gates"]["full"]["triggers"]["max_p95_ms"] == 80.0
    assert plan["gates"]["full"]["triggers"]["max_memory_mb"] is None
    assert plan["alerting"]["rate_window"] == "5s"
    assert plan["alerting"]["for"]["latency"] == "5s"
    assert plan["alerting"]["for"]["success"] == "3m"  # unset keys keep the seed's


@pytest.mark.parametrize(
    ("thresholds", "triggers", "needle"),
    [
        ({}, {"partial": {"max_p95_ms": 40}}, "rollout_triggers.partial.max_p95_ms: 40 ms is stricter"),
        ({"full": {"max_p95_ms": 70}}, {}, "rollout_triggers.full.max_p95_ms: 65 ms is stricter"),
        ({}, {"partial": {"min_success_rate": 99.5}}, "rollout_triggers.partial.min_success_rate: 99.5 %"),
        ({"shadow": {"min_success_rate": 97}}, {}, "rollout_triggers.shadow.min_success_rate: 98 %"),
        ({}, {"full": {"max_memory_mb": 100}}, "rollout_triggers.full.max_memory_mb: 100 MB"),
        ({"full": {"max_open_breakers": 2}}, {"full": {"max_open_breakers": 1}}, "max_open_breakers: 1"),
    ],
)
def test_a_trigger_stricter_than_the_sla_is_refused(thresholds, triggers, needle):
    problems = refused("shadow", thresholds=thresholds, triggers=triggers)
    assert any(needle in p and "would be rolled back" in p for p in problems), problems


@pytest.mark.parametrize(
    ("thresholds", "triggers"),
    [
        ({}, {"partial": {"max_p95_ms": 48, "min_success_rate": 99}}),  # equal to the SLA: not stricter
        ({}, {"partial": {"max_p95_ms": None, "min_success_rate": None}}),  # switched off
        # The SLA does not gate memory: no bound for the trigger.
        ({"partial": {"max_memory_mb": None}}, {"partial": {"max_memory_mb": 64}}),
        ({}, {"full": {"max_open_breakers": 0}}),  # SLA does not gate breakers (default)
    ],
)
def test_a_trigger_at_or_looser_than_the_sla_passes(thresholds, triggers):
    plan = plan_run("partial", {**GOOD, "thresholds": thresholds, "triggers": triggers})
    assert set(plan["gates"]) == {"shadow", "partial", "full"}


@pytest.mark.parametrize(
    ("triggers", "needle"),
    [
        ({"partial": {"max_p95_ms": 0}}, "rollout_triggers.partial.max_p95_ms: must be > 0"),
        ({"partial": {"max_p95_ms": "slow"}}, "rollout_triggers.partial.max_p95_ms: expected a number"),
        ({"full": {"min_success_rate": 101}}, "rollout_triggers.full.min_success_rate: must be from 0"),
        ({"full": {"max_open_breakers": 1.5}}, "rollout_triggers.full.max_open_breakers: must be a whole"),
        ({"full": {"min_requests": None}}, "rollout_triggers.full.min_requests: may not be null"),
        ({"shadow": {"max_failover_percent": "nan"}}, "rollout_triggers.shadow.max_failover_percent"),
        ({"shadow": {"p95": 70}}, "rollout_triggers.shadow.p95: unknown field"),
        ({"canary": {}}, "rollout_triggers.canary: unknown phase"),
        ([65], "rollout_triggers: expected a mapping"),
    ],
)
def test_bad_triggers_are_refused_naming_the_setting(triggers, needle):
    problems = refused("partial", triggers=triggers)
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    ("alerting", "needle"),
    [
        ({"rate_window": "1 minute"}, "rollout_alerting.rate_window: expected a Prometheus duration"),
        ({"rate_window": "0s"}, "rollout_alerting.rate_window: must be longer than 0"),
        ({"for": {"latency": "five"}}, "rollout_alerting.for.latency: expected a Prometheus duration"),
        ({"for": {"latncy": "5m"}}, "rollout_alerting.for.latncy: unknown alert"),
        ({"for": "5m"}, "rollout_alerting.for: expected a mapping"),
        ({"window": "5m"}, "rollout_alerting.window: unknown setting"),
        ("5m", "rollout_alerting: expected a mapping"),
    ],
)
def test_bad_alert_timing_is_refused(alerting, needle):
    problems = refused("partial", alerting=alerting)
    assert any(needle in p for p in problems), problems


# -- baseline judge ------------------------------------------------------------------------------------------


def test_the_judge_is_on_for_partial_and_full_by_default_with_prometheus():
    plan = plan_run("partial", {**GOOD, "provider": "prometheus"})
    judges = {p: (g["judge"]["enabled"], g["judge"]["baseline_period"]) for p, g in plan["gates"].items()}
    assert judges == {"shadow": (False, "during"), "partial": (True, "during"), "full": (True, "before")}
    assert plan["gates"]["partial"]["judge"]["min_samples"] == 100


def test_with_provider_web_the_full_judge_is_off_and_cannot_be_switched_on():
    plan = plan_run("partial", GOOD)  # provider unset: web, the role's default
    assert {p: g["judge"]["enabled"] for p, g in plan["gates"].items()} == {
        "shadow": False,
        "partial": True,
        "full": False,
    }
    problems = refused("full", judge={"full": {"enabled": True}})
    assert problems == [
        "rollout_judge.full.baseline_period: 'before' needs provider=prometheus; "
        "scrapes only see the run itself"
    ]
    # Against legacy at the same moments it may be asked for (Inconclusive without legacy traffic).
    during = plan_run("full", {**GOOD, "judge": {"full": {"baseline_period": "during"}}})
    assert during["gates"]["full"]["judge"]["enabled"] is True


def test_judge_settings_are_applied_per_phase():
    plan = plan_run(
        "shadow",
        {
            **GOOD,
            "provider": "prometheus",
            "judge": {"shadow": {"enabled": True}, "partial": {"alpha": 0.01}},
        },
    )
    assert plan["gates"]["shadow"]["judge"]["enabled"] is True
    assert plan["gates"]["partial"]["judge"]["alpha"] == 0.01
    assert plan["gates"]["full"]["judge"]["alpha"] == 0.05


@pytest.mark.parametrize(
    ("judge", "provider", "needle"),
    [
        (
            {"enabled": True},
            "web",
            "rollout_judge.enabled: unknown phase; expected some of shadow, partial, full",
        ),
        ({"partial": {"alpha": 2}}, "web", "rollout_judge.partial.alpha: must be in (0, 1), got 2"),
        ({"partial": {"beta": 1}}, "web", "rollout_judge.partial.beta: unknown field"),
        ({"partial": {"enabled": "perhaps"}}, "web", "rollout_judge.partial.enabled: expected true or false"),
        ({}, "graphite", "rollout_analysis_provider: expected one of web, prometheus, got 'graphite'"),
    ],
)
def test_bad_judge_settings_are_refused_naming_the_setting(judge, provider, needle):
    assert any(problem.startswith(needle) for problem in refused("partial", judge=judge, provider=provider))


TOKEN = "s3cret-guard-token-0123456789"


@pytest.mark.parametrize("phase", ["shadow", "partial", "full", "status"])
def test_lb_hosts_need_a_guard_token(phase):
    problems = refused(phase, lb_hosts=2, guard_token=None)
    assert [p for p in problems if p.startswith("rollout_guard_token")] == [
        "rollout_guard_token: the inventory has lb hosts, and their guard needs a bearer token of at least "
        "16 characters (a vault value, or a password lookup as in inventories/local); none is set"
    ]


@pytest.mark.parametrize(
    ("token", "needle"),
    [
        ("", "none is set"),
        ("short-token-15ch", None),
        ("short-token15ch", "at least 16 characters long, it has 15"),
        ("a-token-with\na-newline-in-it", "whitespace or control characters"),
        ("a-token-with a-space-in-it", "whitespace or control characters"),
        ("a-token-with\x7fdelete-in-it", "whitespace or control characters"),
        (12345678901234567890, "expected a string, got int"),
    ],
)
def test_the_guard_token_is_checked_and_never_shown(token, needle):
    settings = {**GOOD, "lb_hosts": 1, "guard_token": token}
    if needle is None:
        assert plan_run("partial", settings)["steps"]
        return
    with pytest.raises(PlanError) as caught:
        plan_run("partial", settings)
    (problem,) = caught.value.problems
    assert needle in problem
    assert str(token) not in str(caught.value) or token == ""


def test_the_token_is_listed_with_the_other_problems():
    problems = refused("shadow", shadow_percent=150, lb_hosts=1, guard_token="short")
    assert len(problems) == 2


def test_without_lb_hosts_or_for_a_rollback_no_token_is_needed():
    assert plan_run("partial", {**GOOD, "lb_hosts": 0, "guard_token": None})["steps"]
    assert plan_run("rollback", {**GOOD, "lb_hosts": 2, "guard_token": None})["phase"] == "rollback"
    assert plan_run("full", {**GOOD, "lb_hosts": 2, "guard_token": TOKEN})["steps"]


def test_a_monitoring_host_without_a_password_is_refused():
    problems = refused("status", monitoring_hosts=1, monitoring_user="msgroute", monitoring_password=None)
    assert [p.split(":")[0] for p in problems] == ["rollout_monitoring_password"]
    assert any(
        p.startswith("rollout_monitoring_user")
        for p in refused(
            "partial", monitoring_hosts=1, monitoring_user="ms:group", monitoring_password="secret"
        )
    )


def test_monitoring_credentials_pass_and_stay_out_of_the_plan():
    plan = plan_run(
        "partial", {**GOOD, "monitoring_hosts": 1, "monitoring_user": "u", "monitoring_password": "pw"}
    )
    assert "pw" not in repr(plan)
    # No monitoring host (a user's own Prometheus): nothing to protect here, nothing asked for.
    assert plan_run("partial", {**GOOD, "monitoring_hosts": 0, "monitoring_password": None})["steps"]


@pytest.mark.parametrize(("window", "expected"), [(0, 0), ("600", 600), (604800, 604800)])
def test_the_post_promotion_window_is_planned(window, expected):
    assert plan_run("full", {**GOOD, "legacy_window": window})["legacy_window"] == expected


@pytest.mark.parametrize("window", [-1, 604801, 1.5, "ten minutes", None, True])
def test_a_bad_post_promotion_window_is_refused(window):
    problems = refused("full", legacy_window=window)
    assert any(
        p.startswith(
            (
                "rollout_legacy_window: expected a whole number from 0 to 604800",
                "rollout_legacy_window: must be from 0 to 604800",
            )
        )
        for p in problems
    ), problems


# ------------------------------------------------------------------------------ status.yml's watch


@pytest.mark.parametrize(
    ("every", "bound", "expected"),
    [
        (0, 300, {"every_s": 0, "for_s": 300, "looks": 1}),
        ("5", "300", {"every_s": 5, "for_s": 300, "looks": 61}),
        (7, 20, {"every_s": 7, "for_s": 20, "looks": 3}),
        (3600, 3600, {"every_s": 3600, "for_s": 3600, "looks": 2}),
        (60, 86400, {"every_s": 60, "for_s": 86400, "looks": 1441}),
        (1, 1440, {"every_s": 1, "for_s": 1440, "looks": 1441}),
    ],
)
def test_the_watch_plans_the_looks_that_fit_in_its_bound(every, bound, expected):
    assert check_watch(every, bound) == expected
    assert plan_run("status", {**GOOD, "status_watch": every, "status_watch_for": bound})["watch"] == expected


def test_by_default_status_looks_once():
    assert plan_run("status", GOOD)["watch"] == {"every_s": 0, "for_s": 300, "looks": 1}


@pytest.mark.parametrize(
    ("every", "bound", "problem"),
    [
        (-1, 300, "rollout_status_watch: must be from 0 to 3600, got -1"),
        (3601, 86400, "rollout_status_watch: must be from 0 to 3600, got 3601"),
        (0.5, 300, "rollout_status_watch: expected a whole number from 0 to 3600, got 0.5"),
        ("often", 300, "rollout_status_watch: expected a whole number from 0 to 3600, got 'often'"),
        (5, 0, "rollout_status_watch_for: must be from 1 to 86400, got 0"),
        (5, 86401, "rollout_status_watch_for: must be from 1 to 86400, got 86401"),
        (5, None, "rollout_status_watch_for: expected a whole number from 1 to 86400, got None"),
        (10, 9, "rollout_status_watch_for: 9 s is shorter than rollout_status_watch (10 s), so the watch"),
        (
            59,
            86400,
            "rollout_status_watch_for: a look every 59 s for 86400 s is 1465 looks, more than 1441; "
            "look less often (rollout_status_watch >= 60) or for less time",
        ),
        (1, 1441, "a look every 1 s for 1441 s is 1442 looks, more than 1441; look less often (rollout_sta"),
    ],
)
def test_a_watch_out_of_range_is_refused_naming_the_setting(every, bound, problem):
    with pytest.raises(ValueError, match=r"^rollout_status_watch") as caught:
        check_watch(every, bound)
    assert problem in str(caught.value)
    assert any(problem in p for p in refused("status", status_watch=every, status_watch_for=bound))
