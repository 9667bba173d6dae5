"""When a readiness wait is over, and what it says about instances that never became ready."""

from __future__ import annotations

import pytest
from ansible_collections.msgroute.rollout.plugins.module_utils.readiness import Wait

A, B = "http://127.0.0.1:1/ready", "http://127.0.0.1:2/ready"


def test_done_only_when_every_instance_answered_200_last():
    wait = Wait.of([A, B])
    wait.record(A, 200)
    assert not wait.done() and wait.pending() == [B]
    wait.record(B, 503)
    assert wait.pending() == [B]
    wait.record(B, 200)
    assert wait.done()
    assert wait.message(2.0) == "all 2 instances ready after 2.0 s"


def test_an_instance_that_stops_being_ready_counts_again():
    wait = Wait.of([A])
    wait.record(A, 200)
    wait.record(A, 503)
    assert not wait.done()


def test_the_timeout_message_names_each_late_instance_and_its_last_answer():
    wait = Wait.of([A, B])
    wait.record(A, 200)
    wait.record(B, None, "connection refused")
    assert wait.message(60.0) == f"1 of 2 instances not ready after 60.0 s: {B} (connection refused)"
    assert wait.to_dict()[B] == {"ready": False, "last": "connection refused", "attempts": 1}


def test_no_urls_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        Wait.of([])
