"""Ansible module: the rollout's summary table and report page from the controller's results directory."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollout_report
short_description: Summarise a rollout from its results directory - a text table, report.html and timeline.png
version_added: "0.1.0"
description:
  - Reads the gate reports the rollout roles write into O(results_dir) -
    C(performance_report_<phase>_<weight>.json) for every passed step and C(rollback_decision.json) for the
    last rollback - and returns one row per step (verdict, worst p95 / success rate / memory against their
    thresholds, measurements, duration) and the decision (promoted, or rolled back and why) as data and as a
    text table.
  - Writes C(report.html), a self-contained page (charts inline as base64 PNG, nothing loaded from the
    network) with per step the traffic share per pool, the p95, success rate and memory of every measurement
    against their thresholds, each measurement's verdict, the baseline judge's scores when it ran, and the
    rollback moment and reason; and C(timeline.png), the new pool's share of live traffic over the run with
    each step's verdict.
  - The traffic share per pool is what each pool answered of the live requests (in shadow, the copies
    mirrored to the new pool as a share of the live requests), per measurement from its C(pool_requests)
    (M(msgroute.rollout.rollout_analysis) records them with the baseline judge on); without them, over the
    whole step from the judge's counts when it compared legacy at the same moments; else not recorded, and
    only the configured split is shown.
  - Lists the guard's alerts (alert, value, threshold, time, the weights it took away) when there are any -
    the records O(guard) holds and those a step's rollback wrote into C(rollback_decision.json) (its
    C(guard)) - as RV(guard_alerts) and a section of the page.
  - A step report's optional C(shadow_comparison) (a JSON object) is shown on the page as it is, under the
    step; without it there is no such section. The shadow comparison itself is not built yet (issue 13), so
    the report gives it no format of its own.
  - A rollback decision counts when no passed step was recorded after it; an older one is left out.
  - A rollback by the lb's guard that stands (O(guard)) is the decision, whatever the files say - the guard
    acts with no playbook running.
  - Without matplotlib on the controller the rows and the table are still returned, with a warning, and
    nothing is written - the summary at the end of a playbook never fails a rollout that succeeded.
  - Runs where the results are, on the controller (C(delegate_to=localhost)).
author:
  - msgroute.rollout developers (!UNKNOWN)
requirements:
  - python >= 3.9 on the host the module runs on
  - matplotlib (the charts; drawn with the Agg backend, no display needed)
options:
  results_dir:
    description: Directory holding the gate reports; C(report.html) and C(timeline.png) are written there.
    type: path
    required: true
  version:
    description: Only the reports of this release version; unset takes every report in O(results_dir).
    type: str
  title:
    description: Title of the report page.
    type: str
    default: msgroute rollout report
  write:
    description: Write C(report.html) and C(timeline.png); V(false) only returns the rows and the table.
    type: bool
    default: true
  guard:
    description:
      - The guard's rollback record of each lb as M(msgroute.rollout.traffic_runtime) C(state=query) returns
        it - one record, a list of them, or null.
      - "A record of O(version) whose C(active) is true makes the decision 'rolled back by guard: <alert>
        (<value> vs <threshold>) at <UTC time>, from <phase> <weight>% to legacy'."
      - Every record of O(version), standing or cleared, is listed in RV(guard_alerts) and on the page.
    type: raw
extends_documentation_fragment:
  - msgroute.rollout.attributes
attributes:
  check_mode:
    support: full
    details: Reads and renders, writes nothing, and reports whether the files would change.
  diff_mode:
    support: none
notes:
  - The same results give the same bytes (no time stamp is added), so a re-run reports no change.
seealso:
  - module: msgroute.rollout.rollout_analysis
"""

EXAMPLES = r"""
- name: Summarise the rollout of 2.0.0
  msgroute.rollout.rollout_report:
    results_dir: "{{ rollout_results_dir }}"
    version: "2.0.0"
  delegate_to: localhost
  run_once: true
  register: summary

- name: Print the summary table
  ansible.builtin.debug:
    msg: "{{ summary.table }}"
"""

RETURN = r"""
rows:
  description: One row per step, in rollout order.
  returned: always
  type: list
  elements: dict
  contains:
    step:
      description: Phase and weight, for example C(partial 50%).
      type: str
    verdict:
      description: The gate's verdict, or the rollback's for the step that was rolled back.
      type: str
    rolled_back:
      description: Whether this step was rolled back.
      type: bool
    p95_ms:
      description: C(worst) (largest) measured p95 in ms, its C(threshold), and whether it C(breached) it.
      type: dict
    success_rate:
      description: C(worst) (smallest) success rate in %, its C(threshold), and whether it C(breached) it.
      type: dict
    memory_mb:
      description: C(worst) (largest) memory in MB, its C(threshold), and whether it C(breached) it.
      type: dict
    measurements:
      description: Number of measurements.
      type: int
    duration_s:
      description: Seconds from the first measurement's start to the last one's end; null without times.
      type: float
    traffic:
      description:
        - The traffic share per pool over the step - C(kind) (V(live), or V(mirrored) in shadow),
          C(configured) (the weight, or the shadow's mirror percent), C(share) (the new pool's, in %; null
          when not recorded) and its C(source) (V(measurements), V(judge) or null).
      type: dict
      version_added: "0.2.0"
  sample:
    - step: partial 50%
      phase: partial
      weight: 50
      verdict: Successful
      rolled_back: false
      measurements: 3
      duration_s: 30.2
      message: "Successful: 3 measurements"
      p95_ms: {worst: 41.2, threshold: 48.0, breached: false}
      success_rate: {worst: 99.8, threshold: 99.0, breached: false}
      memory_mb: {worst: 61.2, threshold: 128.0, breached: false}
      traffic: {kind: live, configured: 50, share: 49.9, source: measurements}
guard_alerts:
  description:
    - The guard's alerts of O(version), oldest first - from O(guard) and from the C(guard) records a step's
      rollback wrote into C(rollback_decision.json), once each.
    - "C(state) is V(standing) or V(cleared) as the lb answers it, V(written down with the rollback), or
      V(earlier: steps passed after it) when passed steps were recorded after that rollback."
  returned: always
  type: list
  elements: dict
  version_added: "0.2.0"
  sample:
    - lb: lb1
      alert: MsgrouteLatencyAboveTrigger
      value: 81.2ms
      threshold: 65ms
      summary: p95 above the rollback trigger (partial, version 2.0.0)
      phase: partial
      at: 1796214674.058
      time: "2026-12-02T12:31:14Z"
      new_weight_before: 25
      shadow_percent_before: 0
      state: standing
      source: lb
decision:
  description: Where the run ended - C(outcome) (V(promoted), V(rolled back) or V(none)), C(phase), C(weight),
    C(verdict), C(reason), C(time) and C(text).
  returned: always
  type: dict
  sample:
    outcome: rolled back
    phase: partial
    weight: 50
    verdict: Failed
    reason: "Failed: failed (1) > failure_limit (0); measurement 2/2: p95 latency 83.1 ms > threshold 48 ms"
    time: "2025-01-01T10:00:21.000000Z"
    text: "rolled back to legacy at partial 50% (Failed): ..."
table:
  description: The summary as a text table (figures read C(worst/threshold), C(!) marks a breach), the
    decision and where the report is.
  returned: always
  type: str
matplotlib_error:
  description: Why matplotlib could not be imported (then nothing is written).
  returned: when matplotlib is missing and O(write=true)
  type: str
report:
  description: Path of C(report.html).
  returned: when O(write=true) and matplotlib is installed
  type: str
  sample: /srv/rollout/results/report.html
timeline:
  description: Path of C(timeline.png).
  returned: when O(write=true) and matplotlib is installed
  type: str
  sample: /srv/rollout/results/timeline.png
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.msgroute.rollout.plugins.module_utils import report
from ansible_collections.msgroute.rollout.plugins.module_utils.report_charts import (
    HAS_MATPLOTLIB,
    MATPLOTLIB_IMPORT_ERROR,
    step_chart,
    timeline_chart,
)

HTML_NAME = "report.html"
TIMELINE_NAME = "timeline.png"


def read_results(results_dir: str) -> dict:
    """The gate reports in ``results_dir`` (file name -> parsed JSON); an unreadable file is left out."""
    files = {}
    if not os.path.isdir(results_dir):
        return files
    for name in os.listdir(results_dir):
        if report.STEP_FILE.match(name) or name == report.ROLLBACK_FILE:
            try:
                with open(os.path.join(results_dir, name), encoding="utf-8") as handle:
                    files[name] = json.load(handle)
            except (OSError, ValueError):
                continue
    return files


def differs(path: str, content: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read() != content
    except OSError:
        return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "results_dir": {"type": "path", "required": True},
            "version": {"type": "str"},
            "title": {"type": "str", "default": "msgroute rollout report"},
            "write": {"type": "bool", "default": True},
            "guard": {"type": "raw"},
        },
        supports_check_mode=True,
    )
    params = module.params
    results_dir = params["results_dir"]
    try:
        run = report.collect(read_results(results_dir), params["version"], params["guard"])
    except ValueError as exc:
        module.fail_json(msg=f"guard: {exc}")
    rows = report.step_rows(run)
    decision = report.page_data(run, rows)["decision"]
    alerts = list(run.guard)
    if not params["write"]:
        module.exit_json(
            changed=False,
            rows=rows,
            decision=decision,
            guard_alerts=alerts,
            table=report.text_table(rows, run.decision),
        )
    if not HAS_MATPLOTLIB:
        # The summary closes every phase playbook: a controller without matplotlib still gets the table.
        module.warn(f"{missing_required_lib('matplotlib')}; report.html and timeline.png were not written")
        where = "not written (matplotlib is missing on the controller)"
        module.exit_json(
            changed=False,
            rows=rows,
            decision=decision,
            guard_alerts=alerts,
            table=report.text_table(rows, run.decision, where),
            matplotlib_error=MATPLOTLIB_IMPORT_ERROR,
        )
    html_path = os.path.join(results_dir, HTML_NAME)
    timeline_path = os.path.join(results_dir, TIMELINE_NAME)
    charts = {step.label: step_chart(report.chart_data(step)) for step in run.steps if step.measurements}
    timeline = timeline_chart(report.timeline_data(run))
    page = report.html_page(run, rows, charts, timeline, title=params["title"]).encode("utf-8")
    outputs = {html_path: page, timeline_path: timeline}
    changed = [path for path, content in outputs.items() if differs(path, content)]
    if changed and not module.check_mode:
        try:
            os.makedirs(results_dir, exist_ok=True)
            for path in changed:
                tmp = f"{path}.tmp"
                with open(tmp, "wb") as handle:
                    handle.write(outputs[path])
                module.atomic_move(tmp, path)
        except OSError as exc:
            module.fail_json(msg=f"cannot write the report into {results_dir}: {exc}")
    where = f"{html_path} (check mode: not written)" if changed and module.check_mode else html_path
    module.exit_json(
        changed=bool(changed),
        rows=rows,
        decision=decision,
        guard_alerts=alerts,
        table=report.text_table(rows, run.decision, where),
        report=html_path,
        timeline=timeline_path,
    )


if __name__ == "__main__":
    main()
