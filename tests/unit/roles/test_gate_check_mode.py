"""The gate in check mode, run by ansible-playbook on localhost: the step it is for was never applied, so it
says what it would measure and measures nothing - no verdict, nothing recorded. Routers on ports nothing
listens on: a gate that measured would end in Error, not in a line that names no verdict."""

from __future__ import annotations

from pathlib import Path

from tests.unit.roles.lb_site import PARTIAL_GATE, history, passed, play

SETTINGS = ["-e", '{"rollout_analysis": {"partial": {"interval": 5, "count": 3}}}']


def test_in_check_mode_the_gate_says_what_it_would_measure_and_names_no_verdict(site: Path) -> None:
    (site / "gate.yml").write_text(PARTIAL_GATE)
    for lb in ("lb1", "lb2"):
        history(site, lb, passed("shadow", 0), passed("partial", 25))
    before = (site / "lb1" / "state.json").read_text()
    done = play(site, str(site / "gate.yml"), "--check", *SETTINGS)
    assert done.returncode == 0, done.stdout[-4000:]
    out = " ".join(done.stdout.split())
    assert (
        "GATE partial 50% (check mode): would measure p95 latency, success rate and memory of the new pool "
        "(1 /metrics target(s)) every 5 s, 3 times, against p95 <= 48 ms, success >= 99 %, memory <= 128 MB, "
        "at least 20 requests a measurement (failure_limit 0, inconclusive_limit 0, "
        "consecutive_error_limit 4); would judge it against legacy at the same moments (Mann-Whitney, "
        "alpha 0.05, pass score 95); not measured"
    ) in out
    assert out.count("GATE ") == 1
    assert not any(word in out for word in ("Successful", "Failed", "Inconclusive", "Error"))
    assert (site / "lb1" / "state.json").read_text() == before
    assert not (site / "results").exists(), "no performance report, no rollback decision"
