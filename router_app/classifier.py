"""Deterministic, data-driven message classification.

Rules come from a YAML file (``router_app/rules.yaml`` by default, see its header for the format) and are
evaluated in order, first match wins, so the outcome for a message depends on nothing but the message and the
file. Every decision names the rule that made it and why it matched. Loading validates the whole file and
names the offending field (``rules[3].when.type``), so a bad rule set stops the service at start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from router_app.config import ConfigError

DEFAULT_RULES_FILE = Path(__file__).with_name("rules.yaml")
CONDITIONS = ("type", "type_prefix", "source", "metadata", "max_priority_hint", "keywords")
_WORD_RE = re.compile(r"\w+")
# Keyword search looks at this much payload text at most, so a huge payload cannot make classification slow.
MAX_TEXT_CHARS = 8192
MAX_DEPTH = 8


@dataclass(frozen=True)
class Rule:
    """Conditions (all must hold; ``None`` means "don't care") and what a match decides."""

    name: str
    classification: str
    priority: int
    description: str = ""
    types: frozenset[str] | None = None
    type_prefixes: tuple[str, ...] | None = None
    sources: frozenset[str] | None = None
    metadata: tuple[tuple[str, frozenset[str]], ...] | None = None
    max_priority_hint: int | None = None
    keywords: re.Pattern[str] | None = None  # any keyword as whole words, any case


class Classification(NamedTuple):
    """What a rule decided; the queue is named after the classification (a tuple: built per message)."""

    classification: str
    priority: int
    queue: str
    rule: str
    explanation: str


def _type_may_match(rule: Rule, msg_type: str) -> bool:
    if rule.types is not None and msg_type not in rule.types:
        return False
    return rule.type_prefixes is None or any(msg_type.startswith(p) for p in rule.type_prefixes)


@dataclass(frozen=True)
class RuleSet:
    classes: tuple[str, ...]
    rules: tuple[Rule, ...]
    default: Rule
    _by_type: dict[str, tuple[Rule, ...]] = field(default_factory=dict, compare=False, repr=False)

    def for_type(self, msg_type: str) -> tuple[Rule, ...]:
        """The rules that can match a message of this type, in order (cached: types are few)."""
        found = self._by_type.get(msg_type)
        if found is None:
            found = tuple(rule for rule in self.rules if _type_may_match(rule, msg_type))
            if len(self._by_type) >= 4096:  # bounded even if senders invent types
                self._by_type.clear()
            self._by_type[msg_type] = found
        return found


def keyword_pattern(keywords: Sequence[str]) -> re.Pattern[str]:
    """One regex for a rule's keywords: whole words, any case, any non-word characters inside a phrase.

    One search over the payload text per rule is far cheaper than tokenising the text first.
    """
    phrases = [r"\W+".join(re.escape(word) for word in _WORD_RE.findall(k)) for k in keywords]
    return re.compile(r"(?<!\w)(?:" + "|".join(phrases) + r")(?!\w)", re.IGNORECASE)


def payload_text(payload: Any) -> str:
    """The string values of a payload (not its keys), depth-first, capped at ``MAX_TEXT_CHARS``."""
    parts: list[str] = []
    budget = MAX_TEXT_CHARS
    stack: list[tuple[Any, int]] = [(payload, 0)]
    while stack and budget > 0:
        value, depth = stack.pop()
        kind = type(value)  # exact types: a parsed JSON payload holds nothing else
        if kind is str:
            parts.append(value[:budget])
            budget -= len(value)
        elif depth < MAX_DEPTH and (kind is dict or kind is list):
            depth += 1
            for item in reversed(value.values() if kind is dict else value):
                if type(item) is str or type(item) is dict or type(item) is list:
                    stack.append((item, depth))
    return "\n".join(parts)


class _Text:
    """Payload text computed at most once per message, and only if a keyword rule is reached."""

    __slots__ = ("_payload", "_text")

    def __init__(self, payload: Any) -> None:
        self._payload = payload
        self._text: str | None = None

    def get(self) -> str:
        if self._text is None:
            self._text = payload_text(self._payload) if self._payload else ""
        return self._text


def _explain_match(
    rule: Rule,
    msg_type: str,
    source: str,
    metadata: Mapping[str, str] | None,
    priority_hint: int | None,
    text: _Text,
) -> str | None:
    """``None`` if ``rule`` does not match, else why it does (one clause per condition)."""
    reasons: list[str] = []
    if rule.types is not None:
        if msg_type not in rule.types:
            return None
        reasons.append(f"type={msg_type}")
    if rule.type_prefixes is not None:
        prefix = next((p for p in rule.type_prefixes if msg_type.startswith(p)), None)
        if prefix is None:
            return None
        reasons.append(f"type starts with {prefix}")
    if rule.sources is not None:
        if source not in rule.sources:
            return None
        reasons.append(f"source={source}")
    if rule.metadata is not None:
        if not metadata:
            return None
        for key, allowed in rule.metadata:
            if metadata.get(key) not in allowed:
                return None
            reasons.append(f"metadata.{key}={metadata[key]}")
    if rule.max_priority_hint is not None:
        if priority_hint is None or priority_hint > rule.max_priority_hint:
            return None
        reasons.append(f"priority hint {priority_hint}<={rule.max_priority_hint}")
    if rule.keywords is not None:
        found = rule.keywords.search(text.get())
        if found is None:
            return None
        reasons.append(f"payload mentions '{' '.join(_WORD_RE.findall(found.group(0).lower()))}'")
    return ", ".join(reasons)


def classify(
    rules: RuleSet,
    msg_type: str,
    source: str = "",
    priority_hint: int | None = None,
    metadata: Mapping[str, str] | None = None,
    payload: Any = None,
) -> Classification:
    """Classify one message: the first matching rule decides; a priority hint overrides its priority."""
    text = _Text(payload)
    for rule in rules.for_type(msg_type):
        reason = _explain_match(rule, msg_type, source, metadata, priority_hint, text)
        if reason is not None:
            break
    else:
        rule, reason = rules.default, "no rule matched"
    priority = rule.priority if priority_hint is None else priority_hint
    return Classification(rule.classification, priority, rule.classification, rule.name, reason)


# -- loading -------------------------------------------------------------------------------------------------


def _strings(value: object, label: str, *, allow_scalar: bool = True) -> list[str]:
    items = [value] if allow_scalar and isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise ConfigError(label, "must be a non-empty list of non-empty strings")
    return items


def _priority(value: object, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        raise ConfigError(label, f"must be an integer from 0 to 9, got {value!r}")
    return value


def _check_keys(entry: object, label: str, allowed: Sequence[str], required: Sequence[str]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigError(label, "must be a mapping")
    for key in entry:
        if key not in allowed:
            raise ConfigError(f"{label}.{key}", f"unknown key (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in entry:
            raise ConfigError(f"{label}.{key}", "is required")
    return entry


def _rule(entry: object, label: str, classes: Sequence[str], conditions: bool) -> Rule:
    keys = ("name", "description", "class", "priority", *(("when",) if conditions else ()))
    entry = _check_keys(entry, label, keys, ("name", "class", "priority", *(("when",) if conditions else ())))
    name = entry["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", name):
        raise ConfigError(f"{label}.name", f"must be a short name of letters, digits and ._:-, got {name!r}")
    if entry["class"] not in classes:
        raise ConfigError(f"{label}.class", f"must be one of the declared classes {list(classes)}")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{label}.description", "must be a string")
    fields: dict[str, Any] = {}
    if conditions:
        when = _check_keys(entry["when"], f"{label}.when", CONDITIONS, ())
        if not when:
            raise ConfigError(f"{label}.when", "needs at least one condition")
        fields = _conditions(when, f"{label}.when")
    return Rule(
        name=name,
        classification=entry["class"],
        priority=_priority(entry["priority"], f"{label}.priority"),
        description=description,
        **fields,
    )


def _conditions(when: dict[str, Any], label: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "type" in when:
        fields["types"] = frozenset(_strings(when["type"], f"{label}.type"))
    if "type_prefix" in when:
        fields["type_prefixes"] = tuple(_strings(when["type_prefix"], f"{label}.type_prefix"))
    if "source" in when:
        fields["sources"] = frozenset(_strings(when["source"], f"{label}.source"))
    if "metadata" in when:
        metadata = when["metadata"]
        if not isinstance(metadata, dict) or not metadata:
            raise ConfigError(f"{label}.metadata", "must be a non-empty mapping of key -> value(s)")
        fields["metadata"] = tuple(
            (str(key), frozenset(_strings(values, f"{label}.metadata.{key}")))
            for key, values in metadata.items()
        )
    if "max_priority_hint" in when:
        fields["max_priority_hint"] = _priority(when["max_priority_hint"], f"{label}.max_priority_hint")
    if "keywords" in when:
        keywords = _strings(when["keywords"], f"{label}.keywords")
        for keyword in keywords:
            if not _WORD_RE.search(keyword):
                raise ConfigError(f"{label}.keywords", f"keyword {keyword!r} has no letters or digits")
        fields["keywords"] = keyword_pattern(keywords)
    return fields


def parse_rules(document: object, origin: str = "rules") -> RuleSet:
    """Validate a rules document; every error names the field (``rules[2].when.keywords``)."""
    document = _check_keys(document, origin, ("classes", "default", "rules"), ("classes", "default", "rules"))
    classes = _strings(document["classes"], "classes", allow_scalar=False)
    for name in classes:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
            raise ConfigError("classes", f"class names are lower-case identifiers, got {name!r}")
    if len(set(classes)) != len(classes):
        raise ConfigError("classes", "class names must be unique")
    default = _rule(document["default"], "default", classes, conditions=False)
    entries = document["rules"]
    if not isinstance(entries, list):
        raise ConfigError("rules", "must be a list")
    rules = tuple(_rule(entry, f"rules[{i}]", classes, conditions=True) for i, entry in enumerate(entries))
    names = [rule.name for rule in rules] + [default.name]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ConfigError("rules", f"rule name {duplicate!r} is used twice")
    return RuleSet(tuple(classes), rules, default)


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read and validate a rules file (default: the bundled one); errors name the file and the field."""
    path = Path(path) if path is not None else DEFAULT_RULES_FILE
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("ROUTER_RULES_FILE", f"cannot read {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("ROUTER_RULES_FILE", f"{str(path)!r} is not valid YAML: {exc}") from None
    try:
        return parse_rules(document)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}:{exc.variable}", exc.problem) from None
