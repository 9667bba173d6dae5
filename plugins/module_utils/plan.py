"""The plan of a run: every user-facing setting checked on the controller before anything changes.

A phase playbook's pre-flight hands its raw settings (inventory and extra vars) to ``plan_run``, which either
returns the run's plan - the steps to take, with the phase's thresholds and analysis settings resolved - or
raises ``PlanError`` listing every setting it refuses and why. Nothing downstream re-reads the raw settings:
the steps, the gates and the reports use the plan.

Thresholds and analysis settings are checked by the same code the gate runs
(``thresholds.resolve_thresholds``, ``analysis_run.run_settings``), so the pre-flight and the gate cannot
disagree about what is valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils.analysis_run import RUN_FIELDS, run_settings
from ansible_collections.msgroute.rollout.plugins.module_utils.judge import phase_judge
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import PHASES, resolve_thresholds
from ansible_collections.msgroute.rollout.plugins.module_utils.triggers import (
    resolve_alerting,
    resolve_triggers,
    stricter_than_sla,
)

# What a run does: a phase's steps, a rollback (it only needs the legacy pool), or status (it changes nothing
# and measures the phase in force: status.yml, validate.yml).
RUN_PHASES = (*PHASES, "rollback", "status")
PROVIDERS = ("web", "prometheus")
MAX_INSTANCES = 1000
# The post-promotion window (full.yml keeps legacy able to take traffic back): up to a week.
MAX_LEGACY_WINDOW_S = 7 * 24 * 3600
# The guard's bearer token: long enough not to be guessed, and sendable as one HTTP header word.
MIN_GUARD_TOKEN_LENGTH = 16
# status.yml's watch (rollout_status_watch, Argo's `get rollout --watch`): a look every 1 s to 1 h, for at
# most a day, at most MAX_WATCH_LOOKS looks (a look a minute for a day). Each look is one item of an include
# loop, and Ansible expands every item of such a loop before it runs the first: their number must stay small.
MAX_WATCH_EVERY_S = 3600
MAX_WATCH_FOR_S = 24 * 3600
DEFAULT_WATCH_FOR_S = 300
MAX_WATCH_LOOKS = 1441


class PlanError(ValueError):
    """Settings a run cannot take; ``problems`` holds one line per refused setting."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("Refusing the run before anything changes: " + "; ".join(self.problems))


def whole_number(name: str, value: Any, minimum: int, maximum: int) -> int:
    """A whole number in [minimum, maximum]; numeric strings pass (extra vars arrive as strings)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name}: expected a whole number from {minimum} to {maximum}, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name}: expected a whole number from {minimum} to {maximum}, got {value!r}")
    try:
        number = int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
    except ValueError:
        raise ValueError(
            f"{name}: expected a whole number from {minimum} to {maximum}, got {value!r}"
        ) from None
    if not minimum <= number <= maximum:
        raise ValueError(f"{name}: must be from {minimum} to {maximum}, got {value!r}")
    return number


def _collect(problems: list[str], check: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return check(*args, **kwargs)
    except ValueError as exc:
        problems.append(str(exc))
        return None


def check_guard_token(token: Any) -> None:
    """The guard's bearer token, refused without ever showing it: a string of at least 16 characters with no
    whitespace or control character (it travels as ``Authorization: Bearer <token>``)."""
    name = "rollout_guard_token"
    if token is None or token == "":
        raise ValueError(
            f"{name}: the inventory has lb hosts, and their guard needs a bearer token of at least "
            f"{MIN_GUARD_TOKEN_LENGTH} characters (a vault value, or a password lookup as in "
            "inventories/local); none is set"
        )
    if not isinstance(token, str):
        raise ValueError(f"{name}: expected a string, got {type(token).__name__}")
    if len(token) < MIN_GUARD_TOKEN_LENGTH:
        raise ValueError(
            f"{name}: must be at least {MIN_GUARD_TOKEN_LENGTH} characters long, it has {len(token)}"
        )
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in token):
        raise ValueError(f"{name}: must not contain whitespace or control characters")


def check_analysis(phase: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The phase's analysis settings as the gate will run them (its own parsing, ``run_settings``: ranges,
    Argo's limits that could never trigger within ``count``, the window); ValueError names the setting."""
    try:
        run, window = run_settings(settings)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rollout_analysis.{phase}.{exc}") from None
    # The settings as given, coerced: the gate applies its own defaults to what is not set.
    checked = {name: getattr(run, name) for name in RUN_FIELDS if (settings or {}).get(name) is not None}
    if window is not None:
        checked["window"] = window
    return checked


def check_thresholds(phase: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The phase's thresholds with the user's overrides applied; ValueError names the setting."""
    try:
        return resolve_thresholds(phase, overrides).to_dict()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rollout_thresholds.{phase}: {exc}") from None


def check_triggers(phase: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The phase's rollback triggers with the user's overrides applied; ValueError names the setting."""
    try:
        return resolve_triggers(phase, overrides).to_dict()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rollout_triggers.{phase}.{exc}") from None


def check_judge(phase: str, settings: Mapping[str, Any] | None, provider: str) -> dict[str, Any]:
    """The phase's baseline judge as its gate runs it - ``enabled`` resolved from the phase's default
    (``judge.PHASE_DEFAULTS``) and the provider, every field filled in; ValueError names the setting."""
    try:
        return phase_judge(phase, settings, provider)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rollout_judge.{phase}.{str(exc).removeprefix('judge.')}") from None


def _provider(value: Any, problems: list[str]) -> str:
    if value is None:
        return "web"
    if value not in PROVIDERS:
        problems.append(f"rollout_analysis_provider: expected one of {', '.join(PROVIDERS)}, got {value!r}")
        return "web"
    return str(value)


def check_alerting(settings: Any) -> dict[str, Any]:
    """``rollout_alerting`` (rate window, ``for`` per alert, leak lookback and horizon) with its defaults."""
    if settings is not None and not isinstance(settings, Mapping):
        raise ValueError(f"rollout_alerting: expected a mapping, got {type(settings).__name__}")
    try:
        return resolve_alerting(settings).to_dict()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rollout_alerting.{exc}") from None


def check_monitoring(hosts: Any, user: Any, password: Any) -> list[str]:
    """Role monitoring puts Prometheus and Alertmanager behind basic auth: with a monitoring host in the
    inventory their credentials must be given (an unauthenticated silence switches the guard off)."""
    if not hosts:
        return []
    problems = []
    if not isinstance(user, str) or not user.strip() or ":" in user:
        problems.append(f"rollout_monitoring_user: expected a user name without ':', got {user!r}")
    if not isinstance(password, str) or not password:
        problems.append(
            "rollout_monitoring_password: the inventory has monitoring hosts and Prometheus and Alertmanager "
            "only answer with basic auth; give the password (from a vault)"
        )
    return problems


def check_watch(every: Any, for_seconds: Any = DEFAULT_WATCH_FOR_S) -> dict[str, int]:
    """status.yml's watch: ``every`` seconds between looks (0: one look), for ``for_seconds`` at most.

    Returns ``every_s``, ``for_s`` and ``looks`` - the most looks that fit: one at 0 s, then one every
    ``every_s`` while that is within ``for_s``. ValueError names the setting and its range.
    """
    every_s = whole_number("rollout_status_watch", every, 0, MAX_WATCH_EVERY_S)
    for_s = whole_number("rollout_status_watch_for", for_seconds, 1, MAX_WATCH_FOR_S)
    if every_s == 0:
        return {"every_s": 0, "for_s": for_s, "looks": 1}
    if for_s < every_s:
        raise ValueError(
            f"rollout_status_watch_for: {for_s} s is shorter than rollout_status_watch ({every_s} s), "
            "so the watch would end before its second look"
        )
    looks = for_s // every_s + 1
    if looks > MAX_WATCH_LOOKS:
        raise ValueError(
            f"rollout_status_watch_for: a look every {every_s} s for {for_s} s is {looks} looks, more than "
            f"{MAX_WATCH_LOOKS}; look less often (rollout_status_watch >= "
            f"{-(-for_s // (MAX_WATCH_LOOKS - 1))}) or for less time"
        )
    return {"every_s": every_s, "for_s": for_s, "looks": looks}


def _not_stricter(phase: str, gate: Mapping[str, Any], problems: list[str]) -> None:
    if gate["thresholds"] is None or gate["triggers"] is None:
        return  # already refused, named
    sla = resolve_thresholds(phase, gate["thresholds"])
    problems.extend(stricter_than_sla(phase, sla, resolve_triggers(phase, gate["triggers"])))


def _per_phase(name: str, value: Any, problems: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{name}: expected a mapping of phase to settings, got {type(value).__name__}")
        return {}
    unknown = sorted(set(value) - set(PHASES))
    if unknown:
        problems.append(f"{name}.{unknown[0]}: unknown phase; expected some of {', '.join(PHASES)}")
    bad = sorted(str(p) for p in PHASES if value.get(p) is not None and not isinstance(value.get(p), Mapping))
    for phase in bad:
        problems.append(f"{name}.{phase}: expected a mapping of settings, got {value[phase]!r}")
    return {phase: value.get(phase) or {} for phase in PHASES if phase not in bad}


def _partial_weights(weight: Any, steps: Any, problems: list[str]) -> list[int]:
    name, raw = ("rollout_weight", [weight]) if weight is not None else ("rollout_steps", steps)
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)) or not raw:
        problems.append(f"{name}: expected a non-empty list of whole percentages, got {raw!r}")
        return []
    weights = [_collect(problems, whole_number, name, item, 1, 99) for item in raw]
    if None in weights:
        problems.append(
            f"Partial steps must be whole percentages from 1 to 99 (got {raw}); "
            "100% is full.yml, 0% is rollback.yml"
        )
        return []
    if weights != sorted(set(weights)):
        problems.append(f"{name}: steps must rise strictly (each weight above the one before), got {weights}")
    return weights


def _steps(phase: str, settings: Mapping[str, Any], problems: list[str]) -> list[dict[str, int]]:
    if phase == "shadow":
        percent = _collect(
            problems, whole_number, "rollout_shadow_percent", settings.get("shadow_percent"), 1, 100
        )
        return [{"weight": 0, "shadow_percent": percent or 0}]
    if phase == "partial":
        weights = _partial_weights(settings.get("weight"), settings.get("steps"), problems)
        return [{"weight": weight, "shadow_percent": 0} for weight in weights]
    if phase == "full":
        return [{"weight": 100, "shadow_percent": 0}]
    return []


def plan_run(phase: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check every setting a run of ``phase`` reads and return its plan; PlanError lists what is refused.

    ``settings`` holds the raw values: ``weight`` (rollout_weight or None), ``steps``, ``shadow_percent``,
    ``thresholds``, ``triggers``, ``analysis`` and ``judge`` (per phase), ``provider`` (the gates'),
    ``alerting``, ``new_instances`` and ``legacy_instances`` (the pools' sizes as the inventory gives them),
    ``ports`` (name to value), ``lb_hosts`` (how many the inventory has) and ``guard_token``
    (rollout_guard_token, required with lb hosts: the guard in their nginx refuses every webhook without one),
    ``monitoring_hosts`` (how many), ``monitoring_user`` and ``monitoring_password`` (never in the plan),
    ``legacy_window`` (seconds full.yml keeps legacy able to take traffic back, guarded, before retiring it),
    ``status_watch`` and ``status_watch_for`` (status.yml's watch, ``check_watch``; the plan's ``watch``).

    The plan holds the steps to take and, per phase, the gate's resolved thresholds and analysis settings,
    the resolved rollback triggers and the baseline judge (``gates``): status.yml and validate.yml measure
    a phase other than their own with them, and role monitoring renders its alert rules from them with the
    alert timing (``alerting``). A trigger stricter than its phase's SLA is refused: the guard would revert
    what the gate promotes. A rollback is never refused for a threshold or a step setting: it only needs a
    legacy instance to send traffic to.
    """
    if phase not in RUN_PHASES:
        raise PlanError([f"phase: unknown phase {phase!r}; expected one of {', '.join(RUN_PHASES)}"])
    problems: list[str] = []
    if (
        _collect(problems, whole_number, "legacy pool", settings.get("legacy_instances"), 1, MAX_INSTANCES)
        is None
    ):
        problems[-1] = (
            "legacy pool: the inventory gives no legacy instance (legacy_instances on the legacy hosts)"
        )
    if phase == "rollback":
        if problems:
            raise PlanError(problems)
        return {"phase": phase, "steps": [], "gates": {}}

    if (
        _collect(problems, whole_number, "router_instances", settings.get("new_instances"), 1, MAX_INSTANCES)
        is None
    ):
        problems[-1] = (
            f"router_instances: the new pool needs at least one instance, the inventory gives "
            f"{settings.get('new_instances')!r}"
        )
    for name, value in sorted((settings.get("ports") or {}).items()):
        _collect(problems, whole_number, name, value, 1, 65535)
    if settings.get("lb_hosts"):
        _collect(problems, check_guard_token, settings.get("guard_token"))

    thresholds = _per_phase("rollout_thresholds", settings.get("thresholds"), problems)
    analysis = _per_phase("rollout_analysis", settings.get("analysis"), problems)
    triggers = _per_phase("rollout_triggers", settings.get("triggers"), problems)
    judge = _per_phase("rollout_judge", settings.get("judge"), problems)
    provider = _provider(settings.get("provider"), problems)
    gates = {
        p: {
            "thresholds": _collect(problems, check_thresholds, p, thresholds.get(p)),
            "triggers": _collect(problems, check_triggers, p, triggers.get(p)),
            "analysis": _collect(problems, check_analysis, p, analysis.get(p)),
            "judge": _collect(problems, check_judge, p, judge.get(p), provider),
        }
        for p in PHASES
    }
    for p in PHASES:
        _not_stricter(p, gates[p], problems)
    alerting = _collect(problems, check_alerting, settings.get("alerting"))
    problems.extend(
        check_monitoring(
            settings.get("monitoring_hosts"),
            settings.get("monitoring_user"),
            settings.get("monitoring_password"),
        )
    )
    window = settings.get("legacy_window", 0)
    legacy_window = _collect(problems, whole_number, "rollout_legacy_window", window, 0, MAX_LEGACY_WINDOW_S)
    watch = _collect(
        problems,
        check_watch,
        settings.get("status_watch", 0),
        settings.get("status_watch_for", DEFAULT_WATCH_FOR_S),
    )
    steps = [{"phase": phase, **step} for step in _steps(phase, settings, problems)]
    if problems:
        raise PlanError(problems)
    return {
        "phase": phase,
        "steps": steps,
        "gates": gates,
        "alerting": alerting,
        "legacy_window": legacy_window,
        "watch": watch,
    }
