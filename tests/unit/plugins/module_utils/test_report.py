"""The report's rules: which steps and decision a results directory says, the table rows and text, the chart
data, and the page's embedded data - from results built by the gate's own code (report_samples)."""

from __future__ import annotations

import copy
import datetime
import json
import re

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils import report

from tests.unit.plugins.module_utils.guard_samples import REASON as GUARD_REASON
from tests.unit.plugins.module_utils.guard_samples import guard
from tests.unit.plugins.module_utils.report_samples import (
    GOOD,
    ROLLBACK_REASON,
    START,
    VERSION,
    guard_rollback,
    guard_rolled_back_run,
    iso_z,
    promoted_run,
    rolled_back_run,
    step_report,
)


def rows_of(files, version=VERSION):
    run = report.collect(files, version)
    return run, report.step_rows(run)


def test_a_promoted_run_lists_every_step_in_rollout_order_and_promotes_to_the_last():
    run, rows = rows_of(promoted_run())
    assert [(r["phase"], r["share"], r["verdict"]) for r in rows] == [
        ("shadow", "mirror 10%", "Successful"),
        ("partial", "25%", "Successful"),
        ("partial", "50%", "Successful"),
        ("partial", "75%", "Successful"),
        ("full", "100%", "Successful"),
    ]
    assert run.decision.outcome == "promoted"
    assert run.decision.text() == "promoted to full 100% (Successful)"


def test_a_row_holds_the_worst_figures_against_the_phase_thresholds():
    rows = rows_of(promoted_run())[1]
    shadow, partial, full = rows[0], rows[1], rows[-1]
    # Worst is the largest p95 and memory and the smallest success rate of the step's measurements.
    assert partial["p95_ms"] == {"worst": 35.0, "threshold": 48.0, "breached": False}
    assert partial["success_rate"] == {"worst": 99.8, "threshold": 99.0, "breached": False}
    assert partial["memory_mb"] == {"worst": 62.4, "threshold": 128.0, "breached": False}
    assert (shadow["p95_ms"]["threshold"], full["p95_ms"]["threshold"]) == (45.0, 50.0)
    assert full["success_rate"]["threshold"] == 99.13
    assert partial["measurements"] == 3
    assert partial["duration_s"] == 30.0


def test_a_failed_gate_adds_its_step_marked_rolled_back_with_the_breach_and_reason():
    run, rows = rows_of(rolled_back_run())
    assert [r["step"] for r in rows] == ["shadow mirror 10%", "partial 25%", "partial 50%"]
    failed = rows[-1]
    assert (failed["verdict"], failed["rolled_back"]) == ("Failed", True)
    assert failed["p95_ms"] == {"worst": 83.1, "threshold": 48.0, "breached": True}
    assert failed["success_rate"]["breached"] is False
    assert run.decision.outcome == "rolled back"
    assert (run.decision.phase, run.decision.weight, run.decision.verdict) == ("partial", 50, "Failed")
    assert run.decision.reason == ROLLBACK_REASON


def test_the_text_table_marks_the_breach_and_says_the_decision_and_where_the_report_is():
    run, rows = rows_of(rolled_back_run())
    table = report.text_table(rows, run.decision, "/srv/results/report.html")
    lines = table.splitlines()
    assert lines[0].split() == [
        "PHASE",
        "WEIGHT",
        "VERDICT",
        "P95",
        "ms",
        "SUCCESS",
        "%",
        "MEMORY",
        "MB",
        "N",
        "DURATION",
    ]
    assert re.search(
        r"^partial\s+50%\s+Failed \(rolled back\)\s+83\.1!/48\s+99\.7/99\s+71/128\s+2\s+20s$", lines[3]
    )
    assert lines[-2] == (
        "DECISION: rolled back to legacy at partial 50% on 2026-12-01T10:04:21Z (Failed): " + ROLLBACK_REASON
    )
    assert lines[-1] == "REPORT: /srv/results/report.html"


def test_a_rollback_older_than_a_later_passed_step_is_left_out():
    files = rolled_back_run()
    later = START + datetime.timedelta(hours=1)
    files["performance_report_partial_50.json"] = step_report("partial", 50, later, GOOD)
    run, rows = rows_of(files)
    assert [(r["step"], r["verdict"], r["rolled_back"]) for r in rows][-1] == (
        "partial 50%",
        "Successful",
        False,
    )
    assert run.decision.text() == "promoted to partial 50% (Successful)"


def test_a_newer_rollback_replaces_the_same_step_passed_before():
    files = rolled_back_run()
    earlier = START - datetime.timedelta(hours=1)
    files["performance_report_partial_50.json"] = step_report("partial", 50, earlier, GOOD)
    rows = rows_of(files)[1]
    assert [(r["step"], r["verdict"]) for r in rows if r["weight"] == 50] == [("partial 50%", "Failed")]


def test_a_manual_rollback_keeps_the_passed_steps_and_says_why():
    files = promoted_run()
    files["rollback_decision.json"] = {
        "decision": "rollback",
        "phase": "full",
        "weight": 100,
        "version": VERSION,
        "reverted_to": "legacy",
        "reason": "pager: checkout errors",
        "verdict": "Manual",
        "time": iso_z(START + datetime.timedelta(hours=2)),
    }
    run, rows = rows_of(files)
    assert len(rows) == 5 and not any(r["rolled_back"] for r in rows)
    assert run.decision.text().startswith("rolled back to legacy at full 100% on ")
    assert run.decision.text().endswith("(Manual): pager: checkout errors")


def test_a_standing_guard_rollback_is_the_decision_and_keeps_the_passed_steps():
    # The guard acted after the last step passed, with no playbook running: no file says so, the lbs do.
    files = promoted_run()
    passed_rows = rows_of(files)[1]
    run = report.collect(files, VERSION, guard=[None, guard()])
    assert report.step_rows(run) == passed_rows
    assert (run.decision.outcome, run.decision.verdict, run.decision.time) == (
        "rolled back",
        "Guard",
        "2025-12-02T07:20:00Z",
    )
    assert run.decision.text() == f"{GUARD_REASON}, from partial 50% to legacy"
    assert f"DECISION: {GUARD_REASON}, from partial 50% to legacy" in report.text_table(
        report.step_rows(run), run.decision
    )


def test_a_guard_rollback_of_a_shadow_names_no_weight():
    run = report.collect({}, VERSION, guard=guard(phase="shadow", weights_before={"shadow_percent": 10}))
    assert run.decision.text() == f"{GUARD_REASON}, from shadow to legacy"


def test_a_cleared_guard_record_or_one_of_another_version_is_no_decision():
    files = promoted_run()
    expected = rows_of(files)[0].decision
    for record in (guard(active=False), guard(version="1.9.0")):
        assert report.collect(files, VERSION, guard=record).decision == expected


def test_a_guard_rollback_a_step_wrote_down_keeps_the_passed_steps():
    files = promoted_run()
    files["rollback_decision.json"] = guard_rollback(START + datetime.timedelta(hours=2))
    run, rows = rows_of(files)
    assert len(rows) == 5 and not any(r["rolled_back"] for r in rows)
    assert run.decision.text() == f"{GUARD_REASON}, from partial 75% to legacy"


def test_reports_of_another_version_are_left_out():
    files = promoted_run()
    other = copy.deepcopy(rolled_back_run()["rollback_decision.json"])
    other["version"] = "1.9.0"
    files["rollback_decision.json"] = other
    run, rows = rows_of(files)
    assert len(rows) == 5 and run.decision.outcome == "promoted"
    assert len(report.step_rows(report.collect(files, "1.9.0"))) == 1


def test_no_results_say_so():
    run, rows = rows_of({})
    assert rows == [] and run.decision.outcome == "none"
    table = report.text_table(rows, run.decision)
    assert "(no gated step recorded)" in table.splitlines()
    assert table.splitlines()[-1] == "DECISION: no gated step recorded yet"


def test_chart_data_places_measurements_and_the_rollback_in_seconds_since_the_step_began():
    run = report.collect(rolled_back_run(), VERSION)
    chart = report.chart_data(run.steps[-1])
    assert chart["step"] == "partial 50%"
    assert chart["x"] == [10.0, 20.0]
    assert chart["verdicts"] == ["Successful", "Failed"]
    assert chart["figures"]["p95_ms"]["values"] == [40.2, 83.1]
    assert chart["figures"]["p95_ms"]["threshold"] == 48.0
    assert chart["figures"]["success_rate"]["direction"] == "min"
    assert chart["rollback"] == {"at": 21.0, "reason": ROLLBACK_REASON, "verdict": "Failed"}
    assert report.chart_data(run.steps[0])["rollback"] is None


def test_timeline_data_gives_each_step_its_span_and_live_share():
    run = report.collect(rolled_back_run(), VERSION)
    timeline = report.timeline_data(run)
    assert [(s["step"], s["new_share"], s["verdict"]) for s in timeline["spans"]] == [
        ("shadow mirror 10%", 0, "Successful"),
        ("partial 25%", 25, "Successful"),
        ("partial 50%", 50, "Failed"),
    ]
    assert timeline["spans"][1]["start"] == "2026-12-01T10:02:00+00:00"
    assert timeline["spans"][1]["end"] == "2026-12-01T10:02:30+00:00"
    assert timeline["rollback"] == {"at": "2026-12-01T10:04:21+00:00", "reason": ROLLBACK_REASON}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T10:04:21.123456Z", datetime.datetime(2026, 12, 1, 10, 4, 21, 123456, datetime.UTC)),
        ("2026-12-01T10:00:10.004+00:00", datetime.datetime(2026, 12, 1, 10, 0, 10, 4000, datetime.UTC)),
        ("not a time", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_time_reads_what_the_roles_and_the_gate_write(text, expected):
    assert report.parse_time(text) == expected


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (0.4, "0s"), (30.2, "30s"), (245, "4m05s"), (86400, "24h00m")]
)
def test_format_duration(seconds, text):
    assert report.format_duration(seconds) == text


@pytest.mark.parametrize(
    ("values", "direction", "limit", "worst", "breached"),
    [
        ([31.0, None, 49.0], "max", 48.0, 49.0, True),
        ([99.5, 98.9], "min", 99.0, 98.9, True),
        ([99.5, 99.0], "min", 99.0, 99.0, False),
        ([None], "max", 48.0, None, False),
        ([200.0], "max", None, 200.0, False),
    ],
)
def test_worst_and_breached_at_the_edges(values, direction, limit, worst, breached):
    assert report.worst(values, direction) == worst
    assert report.breached(report.worst(values, direction), limit, direction) is breached


def test_the_page_embeds_its_data_escapes_text_and_loads_nothing_from_the_network():
    files = rolled_back_run()
    files["rollback_decision.json"]["reason"] = "p95 <script>alert(1)</script> & more"
    run, rows = rows_of(files)
    charts = {step.label: b"\x89PNG fake" for step in run.steps}
    page = report.html_page(run, rows, charts, b"\x89PNG timeline")
    assert "<script>alert(1)</script>" not in page
    assert "p95 &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert page.count('src="data:image/png;base64,') == 4
    data = json.loads(
        re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page).group(1)
    )
    assert data["decision"]["reason"] == "p95 <script>alert(1)</script> & more"
    assert [s["step"] for s in data["steps"]] == ["shadow mirror 10%", "partial 25%", "partial 50%"]


# ------------------------------------------------------------------------------- traffic share per pool


@pytest.mark.parametrize(
    ("pools", "phase", "share"),
    [
        ({"new": 250, "legacy": 750}, "partial", 25.0),
        ({"new": 1000, "legacy": 0}, "full", 100.0),
        # Shadow: legacy answers every live request; the new pool's are the mirrored copies.
        ({"new": 80, "legacy": 800}, "shadow", 10.0),
        ({"new": 0, "legacy": 0}, "partial", None),
        ({"new": 250}, "partial", None),
        ({"new": "x", "legacy": 1}, "partial", None),
        (None, "partial", None),
    ],
)
def test_new_share_of_live_requests_or_mirrored_copies(pools, phase, share):
    assert report.new_share(pools, phase) == share


def test_step_traffic_from_every_measurements_pool_requests():
    run = report.collect(promoted_run(), VERSION)
    shadow, partial25 = (report.step_traffic(s) for s in run.steps[:2])
    assert partial25["kind"] == "live" and partial25["configured"] == 25
    assert partial25["measured"] == pytest.approx([25.0, 25.0, 25.0])
    assert partial25["share"] == pytest.approx(25.0) and partial25["source"] == "measurements"
    assert partial25["requests"] == pytest.approx({"new": 2410.0, "legacy": 7230.0})
    assert (shadow["kind"], shadow["configured"], shadow["source"]) == ("mirrored", 10, "measurements")
    assert shadow["share"] == pytest.approx(10.0)
    assert report.traffic_text(partial25) == (
        "new pool 25 % of live requests, legacy 75 % (weight 25 %; over the measurements)"
    )
    assert report.traffic_text(shadow).startswith("mirrored to the new pool: 10 % of live requests;")


def judged(judge_requests, period="during"):
    files = promoted_run()
    step = files["performance_report_partial_50.json"]
    for m in step["measurements"]:
        m["pool_requests"] = None  # results of a gate from before pool_requests, or with a legacy scrape lost
    step["judge"] = {
        "verdict": "Successful",
        "settings": {"baseline_period": period},
        "metrics": {"latency": {"requests": judge_requests}},
    }
    return report.step_traffic(report.collect(files, VERSION).steps[2])


def test_without_per_measurement_counts_the_judges_same_moment_count_gives_the_steps_share():
    traffic = judged({"new": 798.933, "legacy": 800})
    assert traffic["measured"] == [None, None, None]
    assert (traffic["source"], round(traffic["share"], 2)) == ("judge", 49.97)
    assert report.traffic_text(traffic).endswith("(weight 50 %; over the step, the baseline judge's count)")
    # Legacy counted before the step is no share of the step's traffic; nothing recorded says only the weight.
    for traffic in (judged({"new": 800, "legacy": 800}, period="before"), judged({})):
        assert (traffic["share"], traffic["source"]) == (None, None)
        assert report.traffic_text(traffic) == "traffic share per pool: not recorded (weight 50 %)"


def test_rows_chart_data_and_page_data_carry_the_traffic_share():
    run, rows = rows_of(rolled_back_run())
    assert rows[2]["traffic"] == {"kind": "live", "configured": 50, "share": 50.0, "source": "measurements"}
    chart = report.chart_data(run.steps[2])
    assert chart["traffic"] == {
        "kind": "live",
        "values": [50.0, 50.0],
        "configured": 50.0,
        "share": 50.0,
        "source": "measurements",
    }
    data = report.page_data(run, rows)
    assert [s["traffic"]["share"] for s in data["steps"]] == pytest.approx([10.0, 25.0, 50.0])
    page = report.html_page(run, rows, {}, None)
    assert "new pool 50 % of live requests, legacy 50 % (weight 50 %; over the measurements)" in page
    assert "<td>800 / 800 (50 %)</td>" in page


# ------------------------------------------------------------------------------------ guard alerts


def guard_rollback_files(hours: float) -> dict:
    return guard_rolled_back_run(START + datetime.timedelta(hours=hours))


def test_the_guard_alert_a_rollback_wrote_down_is_listed_with_value_threshold_time_and_weights_before():
    run = report.collect(guard_rollback_files(2), VERSION)
    assert [a["state"] for a in run.guard] == ["written down with the rollback"]
    alert = run.guard[0]
    assert {k: alert[k] for k in ("lb", "alert", "value", "threshold", "time", "source")} == {
        "lb": "lb1",
        "alert": "MsgrouteLatencyAboveTrigger",
        "value": "81.2ms",
        "threshold": "65ms",
        "time": "2025-12-02T07:20:00Z",
        "source": "rollback_decision.json",
    }
    assert (alert["new_weight_before"], alert["shadow_percent_before"]) == (75.0, 0.0)
    page = report.html_page(run, report.step_rows(run), {}, None)
    assert '<section id="guard"><h2>Guard alerts</h2>' in page
    assert "<td>new 75 %, mirror 0 %</td>" in page
    assert report.page_data(run, report.step_rows(run))["guard"] == list(run.guard)


def test_a_guard_alert_superseded_by_later_steps_is_still_listed_as_earlier():
    files = guard_rollback_files(-1)  # the rollback came before the steps that passed since
    run = report.collect(files, VERSION)
    assert run.decision.outcome == "promoted"
    assert [a["state"] for a in run.guard] == ["earlier: steps passed after it"]


def test_the_lbs_records_say_standing_or_cleared_and_are_listed_once():
    files = guard_rollback_files(2)
    later = guard(lb="lb2", at=1764660100.0, active=False)
    # lb1 answers the very record the rollback wrote down: listed once, as the lb says it (standing).
    run = report.collect(files, VERSION, guard=[guard(weights_before={"new_weight": 75}), later])
    assert [(a["lb"], a["state"], a["source"]) for a in run.guard] == [
        ("lb1", "standing", "lb"),
        ("lb2", "cleared", "lb"),
    ]
    # Another version's record adds nothing.
    assert (
        report.collect(files, VERSION, guard=guard(version="1.9.0")).guard
        == report.collect(files, VERSION).guard
    )


def test_no_guard_record_means_no_guard_section():
    run, rows = rows_of(rolled_back_run())
    assert run.guard == ()
    assert report.page_data(run, rows)["guard"] == []
    assert 'id="guard"' not in report.html_page(run, rows, {}, None)


def test_a_malformed_record_in_a_file_is_left_out_not_fatal():
    files = guard_rollback_files(2)
    files["rollback_decision.json"]["guard"] = "not a record"
    assert report.collect(files, VERSION).guard == ()


# ------------------------------------------------------------------------------- shadow comparison


def test_a_shadow_comparison_is_shown_as_it_is_only_when_a_step_report_carries_one():
    files = promoted_run()
    comparison = {
        "agreement": 99.2,
        "fields": [{"field": "classification", "differing": 12, "example_ids": ["m-1", "m-2"]}],
        "note": "<b>raw</b>",
    }
    files["performance_report_shadow_0.json"]["shadow_comparison"] = comparison
    run, rows = rows_of(files)
    assert report.page_data(run, rows)["steps"][0]["shadow_comparison"] == comparison
    assert [s["shadow_comparison"] for s in report.page_data(run, rows)["steps"][1:]] == [None] * 4
    page = report.html_page(run, rows, {}, None)
    assert page.count("<h3>Shadow comparison</h3>") == 1
    assert "<dt>agreement</dt><dd>99.2</dd>" in page
    assert "<th>field</th><th>differing</th><th>example_ids</th>" in page
    assert "<td>classification</td><td>12</td><td>m-1, m-2</td>" in page
    assert "&lt;b&gt;raw&lt;/b&gt;" in page and "<b>raw</b>" not in page
    assert "Shadow comparison" not in report.html_page(*rows_of(promoted_run()), {}, None)
