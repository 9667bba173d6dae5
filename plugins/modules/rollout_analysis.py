"""Ansible module: the SLA analysis gate run after every traffic step. Argument parsing, the
measure-sleep loop and I/O only; every decision is in module_utils (thresholds, measurement, prometheus,
analysis_run, judge)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollout_analysis
short_description: Measure the new routers and decide whether a rollout step may proceed
version_added: "0.1.0"
description:
  - Takes O(count) measurements of the new router instances, one every O(interval) seconds, and decides
    the step with Argo Rollouts analysis semantics - V(Successful), V(Failed), V(Inconclusive) or V(Error).
  - Each measurement compares p95 latency, success rate, resident memory and, optionally, open circuit
    breakers with the thresholds of O(phase), overridden by O(thresholds).
  - With O(provider=web) every target's C(/metrics) is scraped before and after each interval; counters
    are differenced per target and summed over targets before the p95 is taken, as Prometheus'
    C(histogram_quantile) does over the C(sum by le) of the bucket rates.
  - With O(provider=prometheus) the same figures are queried from a Prometheus server with PromQL over
    O(window).
  - With O(baseline_targets) (provider V(web)) or O(baseline_selector) (provider V(prometheus)) a baseline
    judge also compares the new pool with the legacy pool over the whole run (Kayenta-style, a one-sided
    Mann-Whitney U test per metric); the run fails if either the thresholds or the judge fail. See O(judge)
    and C(docs/analysis.md) in the collection.
  - The task fails unless the verdict is V(Successful); the result then still carries every measurement,
    so a rescue block can write down the rollback decision.
  - The module only reads and never reports a change. In check mode it measures nothing - a playbook in
    check mode has not applied the step the gate is for, so any figure would be of the traffic in force, not
    of the step - and it does not fail; it checks every option as a real run does and returns RV(verdict)
    V(NotMeasured), RV(measured) V(false), no measurements and, in RV(message), what it would measure, how
    often and against which thresholds.
author:
  - msgroute.rollout developers (!UNKNOWN)
requirements:
  - python >= 3.9 on the host the module runs on
  - prometheus_client (for O(provider=web))
  - scipy (for the baseline judge, O(judge))
options:
  provider:
    description:
      - Where measurements come from.
      - V(web) scrapes the routers' C(/metrics) endpoints listed in O(targets).
      - V(prometheus) queries O(prometheus_url).
    type: str
    choices: [web, prometheus]
    default: web
  targets:
    description:
      - URLs of the new routers' C(/metrics) endpoints, for example C(http://10.0.0.5:8080/metrics).
      - Required with O(provider=web). A target that cannot be scraped makes the measurement an V(Error).
    type: list
    elements: str
  baseline_targets:
    description:
      - URLs of the legacy routers' C(/metrics) endpoints, the baseline the baseline judge compares the new
        pool with. Scraped at the same moments as O(targets); O(provider=web) only.
      - Giving them switches the judge on unless O(judge.enabled=false).
      - The legacy routers must expose the metrics named in O(metric_names). Bucket layouts may differ;
        latency is then compared on the bucket bounds both pools share.
      - An unreachable baseline target does not make a measurement an V(Error); its requests count at its
        next good scrape, and a pool with too few requests makes the judge V(Inconclusive).
    type: list
    elements: str
  baseline_selector:
    description:
      - Label matchers (label name to exact value) that select the legacy routers' series in Prometheus,
        for example C(pool=legacy); O(provider=prometheus) only. The new pool's are O(selector), which must
        then be given and differ.
      - Giving them switches the judge on unless O(judge.enabled=false).
      - After the last measurement the judge asks Prometheus once per pool for the C(increase) over the run
        of every bucket of O(metric_names.histogram) (C(sum by (le))) and of O(metric_names.requests) (by
        O(metric_names.status_label)). A failed query, or a pool without series, makes the judge
        V(Inconclusive), naming the query.
    type: dict
    version_added: "0.2.0"
  prometheus_url:
    description:
      - Base URL of the Prometheus server, for example C(http://prometheus:9090).
      - Required with O(provider=prometheus).
    type: str
  prometheus_user:
    description:
      - User of HTTP basic authentication at O(prometheus_url) (a Prometheus behind a web config, as role
        C(monitoring) runs it - C(rollout_monitoring_user)).
      - Sent only together with O(prometheus_password).
    type: str
    version_added: "0.2.0"
  prometheus_password:
    description:
      - Password of O(prometheus_user) (C(rollout_monitoring_password), from a vault). Never logged.
    type: str
    version_added: "0.2.0"
  selector:
    description:
      - Label matchers (label name to exact value) that select the new routers' series in Prometheus,
        for example C(job=msgroute-router) and C(track=new).
    type: dict
    default: {}
  window:
    description:
      - PromQL range of each query, for example V(2m).
      - Defaults to O(interval) rounded up to whole seconds, but at least V(60s) so that C(rate) sees
        several scrapes.
    type: str
  phase:
    description:
      - Rollout phase whose default thresholds apply.
      - V(shadow) 45 ms p95, 98.5 % success; V(partial) 48 ms, 99 %; V(full) 50 ms, 99.13 %;
        128 MB memory and 20 requests minimum volume in every phase.
    type: str
    required: true
    choices: [shadow, partial, full]
  thresholds:
    description:
      - Overrides of the phase's thresholds. Unknown keys and bad values fail the task before anything is
        measured.
      - C(max_p95_ms) (number > 0) - highest acceptable p95 latency in milliseconds.
      - C(min_success_rate) (0-100) - lowest acceptable percentage of requests not in a failure class.
      - C(max_memory_mb) (number > 0, or null to skip) - highest acceptable resident memory of any router
        in MiB.
      - C(min_requests) (whole number) - requests a measurement needs before latency and success rate are
        judged; fewer makes it V(Inconclusive).
      - C(no_data) (V(inconclusive), V(fail) or V(pass)) - what a value that cannot be computed means.
      - C(max_open_breakers) (whole number, or null to skip; default null) - most circuit breakers allowed
        open.
    type: dict
    default: {}
  metric_names:
    description:
      - Names of the router metrics read by the gate.
    type: dict
    default: {}
    suboptions:
      histogram:
        description: Request duration histogram, in seconds.
        type: str
        default: msgroute_request_duration_seconds
      requests:
        description: Request counter, labelled with the status class.
        type: str
        default: msgroute_requests_total
      memory:
        description: Resident memory gauge, in bytes.
        type: str
        default: process_resident_memory_bytes
      breaker:
        description:
          - Circuit breaker state gauge (0 closed, 1 half-open, 2 open).
          - An empty string ignores breakers.
        type: str
        default: msgroute_breaker_state
      status_label:
        description: Label of the request counter that holds the status class.
        type: str
        default: status_class
      failure_classes:
        description: Status classes that count as failed requests.
        type: list
        elements: str
        default: ['5xx']
  judge:
    description:
      - The baseline judge, an extra gate next to the thresholds (Kayenta's NetflixACAJudge in small).
      - Over the whole run it takes the new and the legacy pool's histogram and request counter increases
        (summed over instances; from the scrapes with O(provider=web), from Prometheus' C(increase) with
        O(provider=prometheus)), turns them into one sample per request (latency at its bucket's upper
        bound; 1 for a failed request, 0 otherwise) and tests each metric with a one-sided Mann-Whitney U
        test (new worse than legacy).
      - A metric is V(High) when the difference is both significant (p < O(judge.alpha)) and larger than
        its tolerance, else V(Pass); with fewer than O(judge.min_samples) requests in a pool it is
        V(Nodata). score = 100 x passing metrics / metrics with data.
      - score >= O(judge.pass_score) is V(Successful), >= O(judge.marginal_score) V(Inconclusive), else
        V(Failed); no metric with data, or a V(Nodata) metric in an otherwise passing judge, is
        V(Inconclusive). The run's verdict is the worse of the thresholds' and the judge's.
      - At most 100000 samples per pool and metric are tested; larger counts are scaled down in proportion,
        which only makes the test more lenient.
    type: dict
    default: {}
    suboptions:
      enabled:
        description:
          - Run the judge. Unset means V(true) when the provider's baseline is given (O(baseline_targets)
            with V(web), O(baseline_selector) with V(prometheus)), V(false) otherwise.
          - V(true) needs that baseline.
        type: bool
      baseline_period:
        description:
          - Which of legacy's requests are the baseline.
          - V(during) - those served during the run, at the same moments as the new pool's.
          - V(before) - those served in the same length of time just before the run and its
            O(initial_delay) (O(provider=prometheus) only). For a step where legacy serves nothing, such
            as the full phase's bake; it compares with legacy as it was, not at the same moments, so a
            difference in load or time of day shows as a difference.
        type: str
        choices: [during, before]
        default: during
        version_added: "0.2.0"
      alpha:
        description: Significance level of each one-sided test, in (0, 1).
        type: float
        default: 0.05
      pass_score:
        description: Lowest score (0-100) that is V(Successful).
        type: float
        default: 95.0
      marginal_score:
        description: Lowest score (0-100, at most O(judge.pass_score)) that is V(Inconclusive) rather than
          V(Failed).
        type: float
        default: 75.0
      latency_tolerance:
        description:
          - Latency is V(High) only if the common-language effect size U / (n_new x n_legacy), the
            probability that a new request is slower than a legacy one (ties count half), exceeds
            0.5 + this value. In [0, 0.5).
          - 0.05 is about a 10 % slowdown of a typical latency distribution, so a significant but smaller
            shift passes.
        type: float
        default: 0.05
      error_rate_tolerance:
        description:
          - The error rate is V(High) only if the new pool's exceeds the legacy pool's by more than this
            many percentage points. In [0, 100).
        type: float
        default: 0.1
      min_samples:
        description: Requests each pool needs over the run before a metric is judged (1 to 100000).
        type: int
        default: 100
  interval:
    description: Seconds between measurements; each measurement covers one interval.
    type: float
    default: 10.0
  count:
    description:
      - Number of measurements, not counting V(Error) ones, which are retried.
      - Must be at least O(failure_limit) + O(consecutive_success_limit) (O(consecutive_success_limit)
        alone with O(failure_limit=-1)) and at least O(inconclusive_limit), or a limit could never be
        reached; such settings are refused before anything is measured, as Argo Rollouts refuses them.
      - Reaching O(count) without a single V(Successful) measurement makes the run V(Inconclusive), even
        when every V(Failed) or V(Inconclusive) one was within its limit. This is stricter than Argo
        Rollouts, which calls that run V(Successful); tolerated bad measurements alone never pass a gate.
    type: int
    default: 3
  initial_delay:
    description: Seconds to wait before the first scrape or query, to let traffic settle after a change.
    type: float
    default: 0.0
  failure_limit:
    description:
      - The run fails when more measurements than this are V(Failed).
      - V(-1) switches the limit off and needs O(consecutive_success_limit).
    type: int
    default: 0
  inconclusive_limit:
    description: The run is V(Inconclusive) when more measurements than this are V(Inconclusive).
    type: int
    default: 0
  consecutive_error_limit:
    description: The run is an V(Error) when more measurements than this in a row are V(Error).
    type: int
    default: 4
  consecutive_success_limit:
    description:
      - Stop early and succeed after this many V(Successful) measurements in a row; V(0) switches it off.
      - When set, reaching O(count) without that streak is V(Inconclusive) (V(Failed) with
        O(failure_limit=-1)).
    type: int
    default: 0
  timeout:
    description: Seconds allowed for each scrape or query.
    type: float
    default: 10.0
  validate_certs:
    description: Verify TLS certificates of HTTPS targets and Prometheus.
    type: bool
    default: true
  mode:
    description:
      - How much of the run this task does. A run measured one task at a time shows each measurement as it is
        taken (in a terminal and in AWX's job output) and decides exactly as a run in one task; role
        C(rollout_step) gates that way (C(docs/analysis.md) in the collection says why).
      - V(run) - the whole run in this task - O(initial_delay), every measurement, the decision.
      - V(plan) - nothing measured - RV(message) says what the run would measure and RV(attempts) how many
        measurements it may take at most, the length of the loop that measures one at a time.
      - V(measure) - one measurement, after the run's state so far (O(progress); empty for the first, which
        first waits O(initial_delay)) - returns RV(measurement), RV(line), the new RV(progress) and
        RV(decided). It never fails the task, whatever the measurement; the caller stops at RV(decided) and
        asks V(decide).
      - V(decide) - no new measurement - the verdict of the run from every measurement taken (O(measurements))
        and the last O(progress), with the baseline judge when it is on; the same result as V(run), failing
        unless V(Successful). A run left undecided (fewer measurements than its rules need) is an V(Error).
      - In check mode every mode measures nothing, as V(run) does.
    type: str
    choices: [run, plan, measure, decide]
    default: run
    version_added: "0.2.0"
  progress:
    description:
      - With O(mode=measure) or O(mode=decide), the run's state after the previous measurement -
        RV(progress) of the previous O(mode=measure) task, as returned (the tally by verdict, when the run
        started, and with O(provider=web) and the judge on, both pools' totals so far). Empty for the first
        measurement.
    type: dict
    default: {}
    version_added: "0.2.0"
  measurements:
    description:
      - With O(mode=decide), every measurement of the run in order - RV(measurement) of each O(mode=measure)
        task, as returned.
    type: list
    elements: dict
    default: []
    version_added: "0.2.0"
extends_documentation_fragment:
  - msgroute.rollout.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is measured in check mode - no target is scraped and Prometheus is not asked. The options are
        checked as in a real run (a bad setting fails the task), and the result says what the gate would do
        (RV(verdict=NotMeasured), RV(measured=false), RV(message)); never V(Successful) or V(Failed).
  diff_mode:
    support: none
notes:
  - A value that is not a number (NaN) in any measured figure, or in the baseline judge's counts, is
    never within a threshold - the measurement is V(Failed) and the judged metric V(High).
  - Settings can be checked before a rollout starts, with the same rules, by
    C(ansible_collections.msgroute.rollout.plugins.module_utils.analysis_run.validate_phase_settings).
seealso:
  - name: Argo Rollouts analysis
    description: The semantics of count, failureLimit, inconclusiveLimit and consecutiveErrorLimit.
    link: https://argo-rollouts.readthedocs.io/en/stable/features/analysis/
"""

EXAMPLES = r"""
- name: Gate the 25 % step on the new routers' own metrics
  msgroute.rollout.rollout_analysis:
    phase: partial
    targets:
      - http://10.0.0.11:8080/metrics
      - http://10.0.0.12:8080/metrics
    interval: 15
    count: 4
    failure_limit: 1
  register: gate

- name: Gate the 50 % step on the thresholds and on a comparison with the legacy pool
  msgroute.rollout.rollout_analysis:
    phase: partial
    targets:
      - http://10.0.0.11:8080/metrics
      - http://10.0.0.12:8080/metrics
    baseline_targets:
      - http://10.0.0.21:8080/metrics
    interval: 15
    count: 4
    judge:
      alpha: 0.01
      latency_tolerance: 0.1
      min_samples: 500
  register: gate

- name: Gate the full cut-over through Prometheus, stopping after three good measurements in a row
  msgroute.rollout.rollout_analysis:
    provider: prometheus
    prometheus_url: https://prometheus:9090
    prometheus_user: msgroute
    prometheus_password: "{{ vault_rollout_monitoring_password }}"
    selector:
      job: msgroute-router
      track: new
    window: 2m
    phase: full
    interval: 30
    count: 10
    consecutive_success_limit: 3

- name: Gate a partial step through Prometheus, with legacy at the same moments as the baseline
  msgroute.rollout.rollout_analysis:
    provider: prometheus
    prometheus_url: http://prometheus:9090
    selector:
      pool: new
    baseline_selector:
      pool: legacy
    phase: partial
    interval: 60
    count: 20

- name: Plan the gate (nothing measured; how many measurements it may take)
  msgroute.rollout.rollout_analysis:
    provider: prometheus
    prometheus_url: http://prometheus:9090
    selector: {pool: new}
    phase: partial
    interval: 300
    count: 288
    mode: plan
  register: plan

- name: Measure one at a time, each measurement shown as it is taken
  msgroute.rollout.rollout_analysis:
    provider: prometheus
    prometheus_url: http://prometheus:9090
    selector: {pool: new}
    phase: partial
    interval: 300
    count: 288
    mode: measure
    # The previous item's result: Ansible keeps the registered variable current inside the loop.
    progress: "{{ {} if k == 0 else tick.progress }}"
  register: tick
  loop: "{{ range(plan.attempts) | list }}"
  loop_control:
    loop_var: k
    label: "{{ tick.line | default(k) }}"
    break_when: tick.decided | default(false)

- name: Decide once, from every measurement
  msgroute.rollout.rollout_analysis:
    provider: prometheus
    prometheus_url: http://prometheus:9090
    selector: {pool: new}
    phase: partial
    interval: 300
    count: 288
    mode: decide
    measurements: "{{ tick.results | map(attribute='measurement') | list }}"
    progress: "{{ (tick.results | last).progress }}"

- name: Shadow gate with a stricter latency budget and a failure on missing data
  msgroute.rollout.rollout_analysis:
    phase: shadow
    targets: "{{ groups['routers_new'] | map('regex_replace', '^(.*)$', 'http://\\1:8080/metrics') | list }}"
    thresholds:
      max_p95_ms: 40
      min_requests: 50
      no_data: fail
  register: shadow_gate
  ignore_errors: true

- name: Record why the gate decided as it did
  ansible.builtin.copy:
    content: "{{ {'verdict': shadow_gate.verdict, 'message': shadow_gate.message,
                  'measurements': shadow_gate.measurements} | to_nice_json }}"
    dest: /var/lib/msgroute/rollback_decision.json
    mode: "0644"
  when: shadow_gate.verdict != 'Successful'
"""

RETURN = r"""
verdict:
  description:
    - Outcome of the run; with the judge on, the worse of the thresholds' and the judge's verdict.
    - V(NotMeasured) in check mode, which measures nothing; it is not a verdict and the task does not fail.
  returned: always
  type: str
  sample: Failed
measured:
  description: Whether measurements were taken - V(false) in check mode only.
  returned: always
  type: bool
  sample: true
  version_added: "0.2.0"
message:
  description:
    - One line naming the deciding rule and, unless successful, the metric, threshold and measured value of
      the measurements behind it; with the judge on, also the judge's verdict (when it fails, the judged
      metric, its p-value and effect).
    - In check mode, what the gate would measure, how often and against which thresholds, ending with
      C(not measured).
  returned: always
  type: str
  sample: "Failed: failed (1) > failure_limit (0); measurement 2/2: p95 latency 83.1 ms > threshold 48 ms"
phase:
  description: The phase whose thresholds were applied.
  returned: always
  type: str
  sample: partial
provider:
  description: Where the measurements came from.
  returned: always
  type: str
  sample: web
thresholds:
  description: The effective thresholds, phase defaults merged with O(thresholds).
  returned: always
  type: dict
  sample:
    max_p95_ms: 48.0
    min_success_rate: 99.0
    max_memory_mb: 128.0
    min_requests: 20
    no_data: inconclusive
    max_open_breakers: null
counts:
  description: Measurements by verdict; C(count) excludes errors, as in Argo Rollouts.
  returned: always
  type: dict
  sample: {count: 2, successful: 1, failed: 1, inconclusive: 0, errors: 0, consecutive_errors: 0}
measurements:
  description: Every measurement taken, in order.
  returned: always
  type: list
  elements: dict
  contains:
    verdict:
      description: V(Successful), V(Failed), V(Inconclusive) or V(Error).
      type: str
    reasons:
      description: Breaches, missing data or errors, each naming metric, threshold and value.
      type: list
      elements: str
    requests:
      description: Requests counted in the interval (mirrored and live).
      type: float
    p95_ms:
      description: p95 latency over all targets in milliseconds.
      type: float
    success_rate:
      description: Percentage of requests not in a failure class.
      type: float
    memory_mb:
      description: Largest resident memory of any target in MiB.
      type: float
    breaker_open:
      description: Open circuit breakers (with O(provider=prometheus), 1 if any is open).
      type: int
    started_at:
      description: ISO 8601 UTC start of the interval.
      type: str
    finished_at:
      description: ISO 8601 UTC end of the interval.
      type: str
    pool_requests:
      description:
        - Requests each pool's routers served over the interval, C(new) and C(legacy) (with
          O(provider=prometheus), each pool's C(increase) over O(window)), for the report's traffic share per
          pool; never judged.
        - Null unless the baseline judge is on (legacy is counted only then), and when either count is
          missing - an Error measurement, a legacy target that did not answer both scrapes, a failed query.
      type: dict
      version_added: "0.2.0"
  sample:
    - verdict: Successful
      reasons: []
      requests: 1200
      p95_ms: 31.4
      success_rate: 99.917
      memory_mb: 61.2
      breaker_open: 0
      started_at: "2025-01-01T10:00:00.000+00:00"
      finished_at: "2025-01-01T10:00:10.004+00:00"
      pool_requests: {new: 1200, legacy: 1195}
judge:
  description: The baseline judge's verdict and the figures behind it.
  returned: when the judge is enabled
  type: dict
  contains:
    verdict:
      description: V(Successful), V(Inconclusive) or V(Failed); the task's RV(verdict) is the worse of this
        and the thresholds' verdict.
      type: str
    score:
      description: 100 x passing metrics / metrics with data; null when no metric had enough samples.
      type: float
    summary:
      description: One line naming the deciding rule and each metric's p-value and effect.
      type: str
    metrics:
      description: By metric (C(latency), C(error_rate)) - C(classification) (Pass, High or Nodata),
        C(reason), C(p_value) (one-sided), C(effect) (latency - the probability that a new request is
        slower than a legacy one; error rate - difference in percentage points), C(effect_limit),
        C(requests) and C(samples) per pool (C(scaled) when the counts were scaled down), and per pool
        figures C(new), C(legacy) (C(p50_ms), C(p95_ms) or C(error_rate) in %).
      type: dict
    settings:
      description: The effective judge settings.
      type: dict
    scrape_problems:
      description: Per pool, the latest problem of each target that could not always be scraped (with
        O(provider=prometheus), of each query that failed or found no series).
      type: dict
    queries:
      description: With O(provider=prometheus), the PromQL of each pool's totals (C(buckets),
        C(by_status)) over the run.
      type: dict
      returned: when O(provider=prometheus)
  sample:
    verdict: Failed
    score: 50.0
    summary: "Failed (score 50 < marginal_score 75): latency High: p=5.8e-265 < alpha 0.05,
      P(new slower than legacy)=0.599 > 0.55; p95 new 41.187 ms vs legacy 34.351 ms"
    metrics:
      latency:
        classification: High
        reason: "latency High: p=5.8e-265 < alpha 0.05, P(new slower than legacy)=0.599 > 0.55;
          p95 new 41.187 ms vs legacy 34.351 ms"
        p_value: 5.811e-265
        effect: 0.5986
        effect_limit: 0.55
        requests: {new: 20000, legacy: 20000}
        samples: {new: 20000, legacy: 20000}
        scaled: false
        new: {p50_ms: 18.1517, p95_ms: 41.1866}
        legacy: {p50_ms: 15.0, p95_ms: 34.351}
      error_rate:
        classification: Pass
        reason: "error rate Pass: p=0.33 >= alpha 0.05, new 0.06 % vs legacy 0.05 % (+0.01 pp <= 0.1 pp)"
        p_value: 0.3349
        effect: 0.01
        effect_limit: 0.1
        requests: {new: 20000, legacy: 20000}
        samples: {new: 20000, legacy: 20000}
        scaled: false
        new: {error_rate: 0.06}
        legacy: {error_rate: 0.05}
    settings: {alpha: 0.05, pass_score: 95.0, marginal_score: 75.0, latency_tolerance: 0.05,
               error_rate_tolerance: 0.1, min_samples: 100, baseline_period: during}
    scrape_problems: {}
window:
  description: PromQL range used by the queries.
  returned: when O(provider=prometheus)
  type: str
  sample: 60s
attempts:
  description: The most measurements the run may take, errors included (O(count) x
    (O(consecutive_error_limit) + 1)); the run usually ends earlier.
  returned: always
  type: int
  sample: 15
  version_added: "0.2.0"
measurement:
  description: With O(mode=measure), the measurement taken, as one element of RV(measurements).
  returned: when O(mode=measure) took a measurement
  type: dict
  version_added: "0.2.0"
progress:
  description:
    - With O(mode=measure), the run's state after this measurement, to give as O(progress) to the next task -
      C(taken) (errors included), C(count), C(successful), C(failed), C(inconclusive), C(errors),
      C(consecutive_errors), C(consecutive_successes), C(verdict) (V(Running) while undecided), C(why),
      C(delay_started), C(run_started) (seconds since the epoch) and, with O(provider=web) and the judge on,
      C(pools).
  returned: when O(mode=measure)
  type: dict
  version_added: "0.2.0"
decided:
  description: With O(mode=measure), whether the run's thresholds are decided, so no measurement is due.
  returned: when O(mode=measure)
  type: bool
  version_added: "0.2.0"
line:
  description:
    - With O(mode=measure), the measurement for an operator - which of O(count), when it ended, p95, success
      rate, memory, requests, its verdict (and reasons), the bad measurements so far against their limits and
      the run's verdict so far.
  returned: when O(mode=measure)
  type: str
  sample: "2/4 2026-12-02T10:05:12Z p95 31.4 ms, success 99.917 %, memory 61.2 MB, 1200 requests: Successful;
    so far failed 0 (failure_limit 0), inconclusive 0 (inconclusive_limit 0), errors in a row 0
    (consecutive_error_limit 4): Running"
  version_added: "0.2.0"
queries:
  description:
    - The PromQL queries, by measured figure.
    - With the baseline judge on, C(legacy_requests) counts legacy's requests for
      RV(measurements[].pool_requests).
  returned: when O(provider=prometheus)
  type: dict
  sample:
    requests: sum(increase(msgroute_requests_total{job="router"}[60s]))
"""

import time
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.msgroute.rollout.plugins.module_utils import _http as http
from ansible_collections.msgroute.rollout.plugins.module_utils.analysis_run import (
    ANALYSIS_FIELDS,
    AnalysisRun,
    Progress,
    RunResult,
    advance,
    evaluate_run,
    max_measurements,
    plan_message,
    progress_line,
    run_settings,
    should_stop,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.judge import (
    BASELINE_PERIODS,
    HAS_SCIPY,
    SCIPY_IMPORT_ERROR,
    JudgeConfig,
    PoolTotals,
    combine_verdicts,
    combined_message,
    interval_requests,
    judge_plan,
    judge_pools,
    pool_queries,
    prometheus_totals,
    resolve_judge,
    run_range,
    scrape_totals,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.measurement import (
    ERROR,
    NOT_MEASURED,
    RUNNING,
    SUCCESSFUL,
    Measurement,
    MetricNames,
    error_measurement,
    measure_from_scrapes,
    measurement_from_dict,
    pool_requests,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.prometheus import (
    PrometheusQueryError,
    default_window,
    measure_from_prometheus,
    parse_prometheus_vector,
    prometheus_queries,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.promtext import (
    ACCEPT_HEADER,
    HAS_PROMETHEUS_CLIENT,
    PROMETHEUS_CLIENT_IMPORT_ERROR,
)
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import (
    PHASES,
    Thresholds,
    resolve_thresholds,
)

_RUN = AnalysisRun()
DEFAULT_TIMEOUT = 10.0
COUNT_FIELDS = ("count", "successful", "failed", "inconclusive", "errors", "consecutive_errors")
_NAMES = MetricNames()
_JUDGE = JudgeConfig()
POOLS = ("new", "legacy")
MODES = ("run", "plan", "measure", "decide")


def argument_spec() -> dict[str, Any]:
    """Defaults come from the dataclasses in module_utils, so they are written down once."""
    return {
        "provider": {"type": "str", "choices": ["web", "prometheus"], "default": "web"},
        "targets": {"type": "list", "elements": "str"},
        "baseline_targets": {"type": "list", "elements": "str"},
        "baseline_selector": {"type": "dict"},
        "prometheus_url": {"type": "str"},
        "prometheus_user": {"type": "str"},
        "prometheus_password": {"type": "str", "no_log": True},
        "selector": {"type": "dict", "default": {}},
        "window": {"type": "str"},
        "phase": {"type": "str", "required": True, "choices": list(PHASES)},
        "thresholds": {"type": "dict", "default": {}},
        "metric_names": {
            "type": "dict",
            "default": {},
            "options": {
                "histogram": {"type": "str", "default": _NAMES.histogram},
                "requests": {"type": "str", "default": _NAMES.requests},
                "memory": {"type": "str", "default": _NAMES.memory},
                "breaker": {"type": "str", "default": _NAMES.breaker},
                "status_label": {"type": "str", "default": _NAMES.status_label},
                "failure_classes": {
                    "type": "list",
                    "elements": "str",
                    "default": list(_NAMES.failure_classes),
                },
            },
        },
        "judge": {
            "type": "dict",
            "default": {},
            "options": {
                "enabled": {"type": "bool"},
                "alpha": {"type": "float", "default": _JUDGE.alpha},
                "pass_score": {"type": "float", "default": _JUDGE.pass_score, "no_log": False},
                "marginal_score": {"type": "float", "default": _JUDGE.marginal_score},
                "latency_tolerance": {"type": "float", "default": _JUDGE.latency_tolerance},
                "error_rate_tolerance": {"type": "float", "default": _JUDGE.error_rate_tolerance},
                "min_samples": {"type": "int", "default": _JUDGE.min_samples},
                "baseline_period": {
                    "type": "str",
                    "choices": list(BASELINE_PERIODS),
                    "default": _JUDGE.baseline_period,
                },
            },
        },
        "interval": {"type": "float", "default": _RUN.interval},
        "count": {"type": "int", "default": _RUN.count},
        "initial_delay": {"type": "float", "default": _RUN.initial_delay},
        "failure_limit": {"type": "int", "default": _RUN.failure_limit},
        "inconclusive_limit": {"type": "int", "default": _RUN.inconclusive_limit},
        "consecutive_error_limit": {"type": "int", "default": _RUN.consecutive_error_limit},
        "consecutive_success_limit": {"type": "int", "default": _RUN.consecutive_success_limit},
        "timeout": {"type": "float", "default": DEFAULT_TIMEOUT},
        "mode": {"type": "str", "choices": list(MODES), "default": "run"},
        "progress": {"type": "dict", "default": {}},
        "measurements": {"type": "list", "elements": "dict", "default": []},
        "validate_certs": {"type": "bool", "default": True},
    }


def _measure_loop(
    measure: Callable[[], Measurement],
    run: AnalysisRun,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> list[Measurement]:
    """Sleep an interval, measure, until the run is decided (which bounds the loop: see AnalysisRun)."""
    measurements: list[Measurement] = []
    while not should_stop(measurements, run):
        started = clock()
        sleep(run.interval)
        measurement = measure()
        measurement.started_at, measurement.finished_at = started, clock()
        measurements.append(measurement)
    return measurements


def _web_measure(
    params: dict[str, Any],
    thresholds: Thresholds,
    names: MetricNames,
    fetch_text: Callable[..., str],
    pools: dict[str, PoolTotals] | None = None,
) -> Callable[[], Measurement]:
    """Each call scrapes every target once; the previous good scrape of a target is its baseline.

    With ``pools`` (the judge on) the legacy targets are scraped right after the new ones, so both pools
    cover the same moments, and each pool's increases are added to its run totals.
    """
    targets = {"new": params["targets"], "legacy": params["baseline_targets"] if pools is not None else []}

    def scrape(pool: str) -> dict[str, str | BaseException]:
        scrapes: dict[str, str | BaseException] = {}
        for target in targets[pool]:
            try:
                scrapes[target] = fetch_text(
                    target, params["timeout"], {"Accept": ACCEPT_HEADER}, params["validate_certs"]
                )
            except http.FetchError as exc:
                scrapes[target] = exc
        return scrapes

    baseline = {pool: scrape(pool) for pool in targets}

    def measure() -> Measurement:
        current = {pool: scrape(pool) for pool in targets}
        measurement = measure_from_scrapes(baseline["new"], current["new"], thresholds, names)
        for pool, scrapes in current.items():
            if pools is not None:
                totals = scrape_totals(baseline[pool], scrapes, names)
                pools[pool] += totals
                if pool == "legacy":
                    legacy = interval_requests(baseline[pool], scrapes, totals)
                    measurement.pool_requests = pool_requests(measurement.requests, legacy)
            for target, text in scrapes.items():
                if isinstance(text, str):
                    baseline[pool][target] = text
        return measurement

    return measure


def _prometheus_auth(params: dict[str, Any]) -> tuple[str, str] | None:
    """Basic auth for Prometheus (role monitoring's web config), when a user is given."""
    return (params["prometheus_user"], params["prometheus_password"]) if params["prometheus_user"] else None


def _prometheus_measure(
    params: dict[str, Any],
    thresholds: Thresholds,
    queries: dict[str, str],
    fetch_json: Callable[..., Any],
    legacy_query: str | None = None,
) -> Callable[[], Measurement]:
    """Each call asks Prometheus every query once; any failed query makes the measurement an Error.

    ``legacy_query`` (the judge on) counts legacy's requests over the same window, for the report's traffic
    share only: its failure leaves the share unrecorded and never touches the verdict.
    """
    url = params["prometheus_url"].rstrip("/") + "/api/v1/query"
    auth = _prometheus_auth(params)

    def ask(query: str) -> float | None:
        answer = fetch_json(url, {"query": query}, params["timeout"], params["validate_certs"], auth=auth)
        return parse_prometheus_vector(answer)

    def measure() -> Measurement:
        results: dict[str, float | None] = {}
        for key, query in queries.items():
            try:
                results[key] = ask(query)
            except (http.FetchError, PrometheusQueryError) as exc:
                return error_measurement([f"{key} query failed: {exc}"])
        measurement = measure_from_prometheus(results, thresholds)
        if legacy_query is not None:
            try:
                legacy = ask(legacy_query)
            except (http.FetchError, PrometheusQueryError):
                legacy = None
            measurement.pool_requests = pool_requests(measurement.requests, legacy)
        return measurement

    return measure


def _prometheus_pools(
    params: dict[str, Any],
    judge: JudgeConfig,
    names: MetricNames,
    run_seconds: float,
    delay_seconds: float,
    fetch_json: Callable[..., Any],
) -> tuple[dict[str, PoolTotals], dict[str, dict[str, str]]]:
    """Both pools' totals over the run, asked of Prometheus once the run is over; legacy's over the run
    or over the same length just before the run and its initial delay (``baseline_period``)."""
    url = params["prometheus_url"].rstrip("/") + "/api/v1/query"
    auth = _prometheus_auth(params)
    seconds, offset = run_range(run_seconds, judge.baseline_period, delay_seconds)
    queries = {
        "new": pool_queries(params["selector"], seconds, names),
        "legacy": pool_queries(params["baseline_selector"], seconds, names, offset),
    }
    pools = {}
    for pool, by_key in queries.items():
        answers: dict[str, Any] = {}
        for key, query in by_key.items():
            try:
                answers[key] = fetch_json(
                    url, {"query": query}, params["timeout"], params["validate_certs"], auth=auth
                )
            except http.FetchError as exc:
                answers[key] = exc
        pools[pool] = prometheus_totals(answers, by_key, names)
    return pools, queries


def _web_tick(
    params: dict[str, Any],
    thresholds: Thresholds,
    names: MetricNames,
    fetch_text: Callable[..., str],
    pools: dict[str, PoolTotals] | None,
    sleep: Callable[[float], None],
    interval: float,
) -> Measurement:
    """One measurement of a run taken one task at a time: every target scraped, an interval, then again.

    No scrape is carried between tasks, so each measurement covers its own interval exactly; with the judge
    on, both pools' increases over the interval are added to their run totals (``pools``, updated in place).
    """
    measure = _web_measure(params, thresholds, names, fetch_text, pools)
    sleep(interval)
    return measure()


def _judged(
    params: dict[str, Any],
    judge: JudgeConfig,
    names: MetricNames,
    outcome_verdict: str,
    outcome_message: str,
    pools: dict[str, PoolTotals],
    seconds: tuple[float, float] | None,
    fetch_json: Callable[..., Any],
) -> tuple[str, str, dict[str, Any]]:
    """The judge over the run (its totals asked of Prometheus when ``seconds``, the run's and the initial
    delay's, are given) and the run's verdict and message with it."""
    judge_queries = None
    if seconds is not None:
        pools, judge_queries = _prometheus_pools(params, judge, names, seconds[0], seconds[1], fetch_json)
    judged = judge_pools(pools["new"], pools["legacy"], judge, names)
    result = judged.to_dict()
    if judge_queries is not None:
        result["queries"] = judge_queries
    return (
        combine_verdicts(outcome_verdict, judged.verdict),
        combined_message(outcome_verdict, outcome_message, judged),
        result,
    )


def _outcome(measurements: list[Measurement], run: AnalysisRun) -> RunResult:
    """The run's outcome from every measurement; a run that ended undecided (a loop cut short) is an Error."""
    outcome = evaluate_run(measurements, run)
    if outcome.verdict == RUNNING:
        outcome.verdict = ERROR
        outcome.message = f"{ERROR}: the run ended undecided; {outcome.message.split(': ', 1)[-1]}"
    return outcome


def _seconds(progress: dict[str, Any], key: str) -> float | None:
    """A time the progress carries (seconds since the epoch), None when it carries none."""
    value = progress.get(key)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"progress.{key}: expected seconds since the epoch, got {value!r}") from None


def main(
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    fetch_text: Callable[..., str] = http.fetch_text,
    fetch_json: Callable[..., Any] = http.fetch_json,
) -> None:
    """Entry point; tests pass fake sleep, clock and fetchers to run the loop without waiting."""
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("provider", "web", ["targets"]), ("provider", "prometheus", ["prometheus_url"])],
        required_together=[("prometheus_user", "prometheus_password")],
        supports_check_mode=True,
    )
    params = module.params
    if params["provider"] == "web" and not HAS_PROMETHEUS_CLIENT:
        module.fail_json(
            msg=missing_required_lib("prometheus_client"), exception=PROMETHEUS_CLIENT_IMPORT_ERROR
        )
    if params["provider"] == "web" and not params["targets"]:
        module.fail_json(msg="targets: at least one /metrics URL is needed with provider=web")
    if params["timeout"] <= 0:
        module.fail_json(msg=f"timeout: must be > 0 seconds, got {params['timeout']}")
    names_args = dict(params["metric_names"], breaker=params["metric_names"]["breaker"] or None)
    analysis = {name: params[name] for name in ANALYSIS_FIELDS}
    prometheus = params["provider"] == "prometheus"
    mode = params["mode"]
    judge: JudgeConfig | None = None
    try:
        thresholds = resolve_thresholds(params["phase"], params["thresholds"])
        names = MetricNames(**names_args)
        # The same parsing as the pre-flight's validate_phase_settings, so the two never disagree.
        run, window = run_settings(analysis)
        window = window or default_window(run.interval)
        queries = prometheus_queries(params["selector"], window, names) if prometheus else {}
        judge = resolve_judge(
            params["judge"],
            params["baseline_targets"],
            params["provider"],
            params["targets"] or [],
            params["baseline_selector"],
            params["selector"],
        )
        progress = Progress.from_dict(params["progress"])
        times = {key: _seconds(params["progress"], key) for key in ("delay_started", "run_started")}
        carried = [measurement_from_dict(m) for m in params["measurements"] or []]
        carried_pools = {
            pool: PoolTotals.from_dict(dict(params["progress"].get("pools") or {}).get(pool))
            for pool in POOLS
        }
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if judge is not None and not HAS_SCIPY and mode != "plan":
        module.fail_json(msg=missing_required_lib("scipy"), exception=SCIPY_IMPORT_ERROR)

    result: dict[str, Any] = {
        "changed": False,
        "phase": params["phase"],
        "provider": params["provider"],
        "thresholds": thresholds.to_dict(),
        "attempts": max_measurements(run),
    }
    if prometheus:
        result.update(window=window, queries=queries)
    source = (
        f"Prometheus at {params['prometheus_url']}, window {window}"
        if prometheus
        else f"{len(params['targets'])} /metrics target(s)"
    )
    plan = plan_message(run, thresholds, source, judge_plan(judge) if judge else "")
    if module.check_mode or mode == "plan":
        # In check mode the step this gate is for was not applied: any figure would be of the traffic in
        # force. Say what would be measured, measure nothing, decide nothing. A plan does the same when real.
        module.exit_json(
            verdict=NOT_MEASURED,
            measured=False,
            message=plan,
            measurements=[],
            counts=dict.fromkeys(COUNT_FIELDS, 0),
            **result,
        )
    pools = None if judge is None else {"new": PoolTotals(), "legacy": PoolTotals()}
    # The judge on: legacy's requests over each measurement's window, for the report's traffic share only.
    legacy_query = None
    if prometheus and judge is not None:
        legacy_query = prometheus_queries(params["baseline_selector"], window, names)["requests"]
        result["queries"] = {**queries, "legacy_requests": legacy_query}

    if mode == "measure":
        if progress.decided:
            # Nothing is due: the loop should have stopped at the deciding measurement.
            module.exit_json(
                measured=False,
                decided=True,
                verdict=progress.verdict,
                progress=params["progress"],
                line=f"no measurement: the run is decided ({progress.verdict})",
                **result,
            )
        if progress.taken == 0:
            times["delay_started"] = clock()
            sleep(run.initial_delay)
            times["run_started"] = clock()
        pools = None if judge is None else carried_pools
        started = clock()
        if prometheus:
            sleep(run.interval)
            measurement = _prometheus_measure(params, thresholds, queries, fetch_json, legacy_query)()
        else:
            measurement = _web_tick(params, thresholds, names, fetch_text, pools, sleep, run.interval)
        measurement.started_at, measurement.finished_at = started, clock()
        progress = advance(progress, measurement.verdict, run)
        state = dict(progress.to_dict(), **times)
        if pools is not None and not prometheus:
            state["pools"] = {pool: totals.to_dict() for pool, totals in pools.items()}
        module.exit_json(
            measured=True,
            measurement=measurement.to_dict(),
            progress=state,
            decided=progress.decided,
            verdict=progress.verdict,
            line=progress_line(measurement, progress, run),
            **result,
        )

    delay_started = clock()
    if mode == "decide":
        measurements = carried
        delay_started = times["delay_started"] or clock()
        run_started = times["run_started"] or delay_started
        if pools is not None and not prometheus:
            pools = carried_pools
    else:
        sleep(run.initial_delay)
        if prometheus:
            measure = _prometheus_measure(params, thresholds, queries, fetch_json, legacy_query)
        else:
            measure = _web_measure(params, thresholds, names, fetch_text, pools)
        run_started = clock()
        measurements = _measure_loop(measure, run, sleep, clock)
    outcome = _outcome(measurements, run)
    verdict, message = outcome.verdict, outcome.message
    if judge is not None and pools is not None:
        seconds = (clock() - run_started, run_started - delay_started) if prometheus else None
        verdict, message, result["judge"] = _judged(
            params, judge, names, outcome.verdict, outcome.message, pools, seconds, fetch_json
        )
    result.update(
        verdict=verdict,
        measured=True,
        message=message,
        measurements=outcome.history,
        counts={key: getattr(outcome, key) for key in COUNT_FIELDS},
    )
    if verdict != SUCCESSFUL:
        module.fail_json(msg=message, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
