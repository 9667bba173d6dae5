"""Classification rules and the routing engine's deterministic decisions."""

from __future__ import annotations

import pytest

from router_app.classifier import BUILTIN_RULES, DEFAULT_RULE, Rule, classify, match_rule
from router_app.config import Settings
from router_app.engine import RoutingEngine
from router_app.models import RouteRequest


@pytest.mark.parametrize("msg_type", ["alert", "command", "escalation"])
def test_strategic_types(msg_type: str) -> None:
    decided = classify(msg_type)
    assert (decided.classification, decided.priority, decided.queue) == ("strategic", 1, "strategic")
    assert decided.rule == "builtin:strategic-types"


@pytest.mark.parametrize("msg_type", ["telemetry", "status", "Alert", "alerts", "x"])
def test_everything_else_is_tactical(msg_type: str) -> None:
    decided = classify(msg_type)
    assert (decided.classification, decided.priority, decided.queue) == ("tactical", 5, "tactical")
    assert decided.rule == DEFAULT_RULE.name


@pytest.mark.parametrize(("msg_type", "hint"), [("alert", 7), ("telemetry", 0), ("command", 9)])
def test_priority_hint_overrides(msg_type: str, hint: int) -> None:
    decided = classify(msg_type, hint)
    assert decided.priority == hint
    assert decided.classification == classify(msg_type).classification


def test_first_matching_rule_wins() -> None:
    rules = (Rule("a", frozenset({"x"}), "tactical", 3), Rule("b", frozenset({"x"}), "strategic", 0))
    assert match_rule("x", rules).name == "a"
    assert match_rule("y", rules) is DEFAULT_RULE
    assert match_rule("alert") is BUILTIN_RULES[0]


def test_engine_round_robins_destinations_and_stamps_version() -> None:
    engine = RoutingEngine(Settings(version="3.1", mode="shadow", destinations=("x", "y", "z")))
    decisions = [engine.route(RouteRequest(id=f"m{i}", source="s", type="alert")) for i in range(7)]
    assert [d.destination for d in decisions] == ["x", "y", "z", "x", "y", "z", "x"]
    assert {(d.engine_version, d.mode) for d in decisions} == {("3.1", "shadow")}
    assert [d.message_id for d in decisions] == [f"m{i}" for i in range(7)]
