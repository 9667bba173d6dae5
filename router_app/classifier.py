"""Deterministic message classification.

Rules are plain data evaluated in order, first match wins, so the YAML rule files planned for later can load
into the same ``Rule`` shape without touching the hot path. Everything here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass

STRATEGIC = "strategic"
TACTICAL = "tactical"


@dataclass(frozen=True)
class Rule:
    """Messages whose ``type`` is in ``types`` get ``classification`` and default ``priority``."""

    name: str
    types: frozenset[str]
    classification: str
    priority: int


@dataclass(frozen=True)
class Classification:
    """What a rule decided; the queue is named after the classification."""

    classification: str
    priority: int
    queue: str
    rule: str


BUILTIN_RULES: tuple[Rule, ...] = (
    Rule("builtin:strategic-types", frozenset({"alert", "command", "escalation"}), STRATEGIC, 1),
)
DEFAULT_RULE = Rule("builtin:default-tactical", frozenset(), TACTICAL, 5)


def match_rule(msg_type: str, rules: tuple[Rule, ...] = BUILTIN_RULES, default: Rule = DEFAULT_RULE) -> Rule:
    """First rule listing ``msg_type``, else ``default``: an unknown type is routine traffic, not an error."""
    for rule in rules:
        if msg_type in rule.types:
            return rule
    return default


def classify(
    msg_type: str,
    priority_hint: int | None = None,
    rules: tuple[Rule, ...] = BUILTIN_RULES,
    default: Rule = DEFAULT_RULE,
) -> Classification:
    """Classify one message; a sender's explicit priority hint overrides the rule's default priority."""
    rule = match_rule(msg_type, rules, default)
    priority = rule.priority if priority_hint is None else priority_hint
    return Classification(rule.classification, priority, rule.classification, rule.name)
