"""The YAML rule classifier: agrees with every label of the shipped corpus, explains itself, refuses
bad rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from router_app.classifier import classify, keyword_pattern, load_rules, parse_rules, payload_text
from router_app.config import ConfigError, Settings
from router_app.engine import RoutingEngine
from router_app.models import RouteRequest

CORPUS = Path(__file__).with_name("data") / "classifier_corpus.jsonl"
RULES = load_rules()


def corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def test_corpus_is_large_and_valid() -> None:
    entries = corpus()
    assert len(entries) >= 200
    assert len({e["message"]["id"] for e in entries}) == len(entries)
    for entry in entries:
        RouteRequest.model_validate(entry["message"])  # every corpus message is a valid request
    labels = {e["label"]["class"] for e in entries}
    assert labels == {"strategic", "tactical"}
    assert {e["label"]["rule"] for e in entries} == {r.name for r in RULES.rules} | {RULES.default.name}


def test_classifier_agrees_with_every_label() -> None:
    disagreements = []
    for entry in corpus():
        m = entry["message"]
        got = classify(RULES, m["type"], m["source"], m.get("priority"), m.get("metadata"), m.get("payload"))
        if {"class": got.classification, "priority": got.priority, "rule": got.rule} != entry["label"]:
            disagreements.append((m["id"], entry["label"], got))
    assert disagreements == []


def test_classification_is_deterministic() -> None:
    message = corpus()[0]["message"]
    results = {
        classify(RULES, message["type"], message["source"], payload=message.get("payload")) for _ in range(5)
    }
    assert len(results) == 1


@pytest.mark.parametrize(
    ("kwargs", "rule", "explanation"),
    [
        ({"msg_type": "alert"}, "strategic-types", "type=alert"),
        ({"msg_type": "security.scan"}, "security-incident", "type starts with security."),
        ({"msg_type": "status", "metadata": {"severity": "sev1"}}, "critical-severity",
         "metadata.severity=sev1"),
        ({"msg_type": "status", "source": "ops-console", "priority_hint": 1}, "ops-console-urgent",
         "source=ops-console, priority hint 1<=1"),
        ({"msg_type": "status", "payload": {"x": "Service DOWN now"}}, "outage-keywords",
         "payload mentions 'service down'"),
        ({"msg_type": "whatever"}, "default-tactical", "no rule matched"),
    ],
)  # fmt: skip
def test_decision_explains_the_rule(kwargs: dict[str, Any], rule: str, explanation: str) -> None:
    decided = classify(RULES, **kwargs)
    assert (decided.rule, decided.explanation) == (rule, explanation)
    assert decided.queue == decided.classification


def test_priority_hint_overrides_but_class_stays() -> None:
    assert classify(RULES, "alert", priority_hint=7).priority == 7
    assert classify(RULES, "alert", priority_hint=7).classification == "strategic"
    assert classify(RULES, "heartbeat").priority == 8


def test_payload_text_is_bounded_and_ignores_keys() -> None:
    assert payload_text({"breach": 1, "list": ["A b", {"deep": "C"}]}).split() == ["A", "b", "C"]
    pattern = keyword_pattern(["breach"])
    assert pattern.search(payload_text({"blob": "word " * 2000 + "breach"})) is None  # past the scan limit
    nested: Any = "breach"
    for _ in range(20):
        nested = {"n": nested}
    assert pattern.search(payload_text(nested)) is None  # past the depth limit


@pytest.mark.parametrize(
    ("text", "found"),
    [("a Data-Leak here", True), ("DATA\nleak", True), ("dataleak", False), ("data leaking", False),
     ("metadata leak", False), ("x_data leak", False)],
)  # fmt: skip
def test_keywords_match_whole_words_in_any_case(text: str, found: bool) -> None:
    assert (keyword_pattern(["data leak"]).search(text) is not None) is found


def test_rules_are_indexed_by_type() -> None:
    candidates = {rule.name for rule in RULES.for_type("telemetry")}
    assert "telemetry" in candidates and "strategic-types" not in candidates
    assert "security-incident" in {rule.name for rule in RULES.for_type("security.scan")}
    assert RULES.for_type("telemetry") is RULES.for_type("telemetry")


def rules_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "classes": ["strategic", "tactical"],
        "default": {"name": "d", "class": "tactical", "priority": 5},
        "rules": [{"name": "r", "when": {"type": ["alert"]}, "class": "strategic", "priority": 1}],
    }
    doc.update(overrides)
    return doc


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (rules_doc(rules=[{"name": "r", "when": {"type": ["a"]}, "class": "urgent", "priority": 1}]),
         "rules[0].class"),
        (rules_doc(rules=[{"name": "r", "when": {"type": ["a"]}, "class": "tactical", "priority": 10}]),
         "rules[0].priority"),
        (rules_doc(rules=[{"name": "r", "when": {"colour": ["a"]}, "class": "tactical", "priority": 1}]),
         "rules[0].when.colour"),
        (rules_doc(rules=[{"name": "r", "when": {}, "class": "tactical", "priority": 1}]), "rules[0].when"),
        (rules_doc(rules=[{"name": "r", "when": {"type": []}, "class": "tactical", "priority": 1}]),
         "rules[0].when.type"),
        (rules_doc(rules=[{"name": "r", "when": {"keywords": ["!!"]}, "class": "tactical", "priority": 1}]),
         "rules[0].when.keywords"),
        (rules_doc(rules=[{"when": {"type": ["a"]}, "class": "tactical", "priority": 1}]), "rules[0].name"),
        (rules_doc(rules=[{"name": "d", "when": {"type": ["a"]}, "class": "tactical", "priority": 1}]),
         "rules"),
        (rules_doc(default={"name": "d", "class": "tactical"}), "default.priority"),
        (rules_doc(classes=["Strategic"]), "classes"),
        (rules_doc(rules={"r": 1}), "rules"),
    ],
)  # fmt: skip
def test_bad_rules_name_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules(doc)
    assert caught.value.variable == field


def test_rules_file_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules_doc(default={"name": "d", "class": "nope", "priority": 1})))
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert caught.value.variable == "rules.yaml:default.class"
    path.write_text("rules: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_custom_rules_file_drives_the_engine(tmp_path: Path) -> None:
    doc = rules_doc(
        classes=["urgent", "bulk"],
        default={"name": "bulk-default", "class": "bulk", "priority": 9},
        rules=[{"name": "pager", "when": {"source": ["pager"]}, "class": "urgent", "priority": 0}],
    )
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(doc))
    engine = RoutingEngine(Settings(rules_file=str(path)))
    assert set(engine.queues.queues) == {"urgent", "bulk"}
    decided = engine.decide(RouteRequest(id="m", source="pager", type="alert"))
    assert (decided["classification"], decided["queue"], decided["rule"]) == ("urgent", "urgent", "pager")


def test_per_class_settings_must_name_declared_classes() -> None:
    with pytest.raises(ConfigError) as caught:
        RoutingEngine(Settings(queue_capacity_by_class={"urgent": 5}))
    assert caught.value.variable == "ROUTER_QUEUE_CAPACITY_BY_CLASS"
