"""The rollout roles honour a rollback the lb's guard recorded, run by ansible-playbook on localhost: two lb
hosts whose nginx is a fake ``docker`` (fake_docker.py) answering the runtime API from a JSON file each, so
the records are the lbs' own and no container runs. lb1's guard rolled 2.0.0 back at partial 50 %."""

from __future__ import annotations

import json

from tests.support import ROOT
from tests.support.net import free_port
from tests.unit.plugins.module_utils.guard_samples import REASON, VERSION, guard
from tests.unit.roles.lb_site import history, lbs, nginx, passed, play


def test_partial_is_refused_on_every_lb_with_the_guard_reason_and_the_locks_are_given_back(site):
    # lb2's nginx does not answer (no container): its record cannot be read, lb1's decides for both.
    lbs(site, lb1=nginx(guard()))
    for lb in ("lb1", "lb2"):
        history(site, lb, passed("shadow", 0), passed("partial", 25))
    before = (site / "lb1" / "state.json").read_text()
    done = play(site, str(site / "begin.yml"), "-e", "phase=partial")
    assert done.returncode != 0
    refusal = f"refusing partial of {VERSION}: {REASON}; run shadow.yml to start again"
    out = " ".join(done.stdout.split())
    assert out.count(refusal) >= 2, done.stdout[-4000:]
    assert "fatal: [lb2]" in done.stdout, "lb2 shows no record and is refused all the same"
    assert not (site / "lb1" / "rollout.lock").exists() and not (site / "lb2" / "rollout.lock").exists()
    assert (site / "lb1" / "state.json").read_text() == before, "a refused run records nothing"
    assert f"DECISION: {REASON}, from partial 50% to legacy" in done.stdout


def test_a_record_of_another_version_or_a_cleared_one_does_not_refuse(site):
    lbs(site, lb1=nginx(guard(version="1.9.0")), lb2=nginx(guard(active=False)))
    for lb in ("lb1", "lb2"):
        history(site, lb, passed("shadow", 0))
    done = play(site, str(site / "begin.yml"), "-e", "phase=partial", "-e", "rollout_weight=50")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "rolled back by guard" not in done.stdout


def test_status_reports_the_guard_rollback_and_fails(site):
    lbs(site, lb1=nginx(guard()), lb2=nginx(None))
    history(site, "lb1", passed("shadow", 0), passed("partial", 50))
    history(site, "lb2", passed("shadow", 0), passed("partial", 50))
    done = play(site, str(ROOT / "playbooks/status.yml"))
    assert done.returncode != 0
    out = " ".join(done.stdout.split())
    assert (
        f"{REASON} (version {VERSION}; on lb1). Traffic is on legacy; run shadow.yml to start again." in out
    )
    assert f"lb1: '{REASON} (version {VERSION})'" in out
    assert "lb2: no rollback by the guard stands" in out
    assert f"DECISION: {REASON}, from partial 50% to legacy" in done.stdout


BLIND_LB1 = "lb1: 'guard blind: its nginx answers no guard record, a configuration from before the guard'"


def test_status_says_where_the_guard_is_blind(site):
    # lb1's nginx predates the guard: its answer holds no record. The new pool has no traffic, so blindness
    # alone does not make the rollout degraded (with traffic it does: tests/integration).
    lbs(site, lb1=nginx("absent"), lb2=nginx(None))
    for lb in ("lb1", "lb2"):
        history(site, lb, passed("shadow", 0))
    done = play(site, str(ROOT / "playbooks/status.yml"))
    out = " ".join(done.stdout.split())
    assert BLIND_LB1 in out
    assert "lb2: no rollback by the guard stands" in out
    assert "guard blind on" not in out and "rolled back by guard" not in out


def test_status_says_the_guard_is_blind_when_its_prometheus_and_alertmanager_do_not_answer(site):
    # A monitoring host whose Prometheus and Alertmanager ports refuse: the guard's chain cannot act. With
    # live traffic on the new pool, status fails and says where (their real answers: tests/integration).
    hosts = json.loads((site / "hosts.yml").read_text())
    hosts["all"]["vars"]["rollout_monitoring_password"] = "unit-test-monitoring-password"
    hosts["all"]["children"]["monitoring"] = {
        "hosts": {
            "mon1": {
                "monitoring_listen_port": free_port(),
                "monitoring_alertmanager_listen_port": free_port(),
            }
        }
    }
    (site / "hosts.yml").write_text(json.dumps(hosts))
    lbs(site, lb1=nginx(None, new_weight=50), lb2=nginx(None, new_weight=50))
    for lb in ("lb1", "lb2"):
        history(site, lb, passed("shadow", 0), passed("partial", 50))
    done = play(site, str(ROOT / "playbooks/status.yml"))
    assert done.returncode != 0
    out = " ".join(done.stdout.split())
    assert "mon1 (Prometheus, Alertmanager): 'guard blind: Prometheus on mon1:" in out, done.stdout[-4000:]
    assert "Alertmanager on mon1:" in out and "does not answer" in out
    assert "guard blind on mon1 while the new pool has traffic" in out
