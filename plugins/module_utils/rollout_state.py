"""The rollout's memory on the lb hosts: phase, weight, step history and decisions, and a run lock.

Plain functions over a JSON document so the rules (which phase may follow which, when a lock is stale, what a
re-run has left to do) are unit-tested without Ansible. The module ``rollout_state`` does the file I/O.

A rollback the lb's guard recorded (``guard_record``) counts like one of rollback.yml: while it stands,
partial and full are refused with its reason; a new shadow run records it in the history (a rollback step
with verdict ``Guard``) and has the lb clear it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils import guard_record
from ansible_collections.msgroute.rollout.plugins.module_utils.thresholds import PHASES

# What must have passed, for the same version, before a phase may start.
PREREQUISITE = {"shadow": None, "partial": "shadow", "full": "partial"}
SUCCESSFUL = "Successful"


class StateError(ValueError):
    """A request the state refuses; the message says why and how to proceed."""


def empty_state() -> dict[str, Any]:
    return {"version": None, "phase": None, "weight": 0, "status": "idle", "steps": []}


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return empty_state()
    except json.JSONDecodeError as exc:
        raise StateError(f"{path} is not valid JSON ({exc}); move it aside to start a new history") from exc
    state = empty_state()
    state.update(data)
    return state


def save(path: str, data: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a state file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state.", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def passed(state: dict[str, Any], version: str, phase: str) -> list[int]:
    """Weights of the phase that passed for this version, since the last rollback of it."""
    weights: list[int] = []
    for step in state.get("steps", []):
        if step.get("version") != version:
            continue
        if step.get("phase") == "rollback":
            weights = []
            continue
        if step.get("phase") == phase and step.get("verdict") == SUCCESSFUL:
            weights.append(int(step.get("weight", 0)))
    return weights


def rolled_back_since_passed(state: dict[str, Any], version: str, phase: str) -> bool:
    return not passed(state, version, phase) and any(
        s.get("version") == version and s.get("phase") == "rollback" for s in state.get("steps", [])
    )


def _guard_key(entry: dict[str, Any]) -> tuple[Any, Any, Any]:
    return entry.get("lb"), entry.get("alert"), entry.get("at")


def guard_steps(state: dict[str, Any], guard: Any, now: str = "") -> list[dict[str, Any]]:
    """The rollback steps that put the guard's standing records into the history, one per version; a record
    the history already holds (same lb, alert and time) is not recorded twice."""
    seen = {
        _guard_key(entry)
        for step in state.get("steps", [])
        if step.get("verdict") == guard_record.VERDICT
        for entry in step.get("guard", [])
    }
    new = [r for r in guard_record.active(guard) if _guard_key(guard_record.summary(r)) not in seen]
    steps = []
    for version in dict.fromkeys(str(r.get("version")) for r in new):
        mine = [r for r in new if str(r.get("version")) == version]
        first = mine[0]
        step = {
            "phase": "rollback",
            "weight": 0,
            "version": version,
            "from_phase": first.get("phase"),
            "from_weight": guard_record.weight_before(first),
            "verdict": guard_record.VERDICT,
            "message": guard_record.reason(first),
            "guard": [guard_record.summary(r) for r in mine],
        }
        if now:
            step["at"] = now
        steps.append(step)
    return steps


def acknowledge(
    state: dict[str, Any], guard: Any, now: str = ""
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The state with the guard's standing rollbacks recorded, and the steps that were added."""
    steps = guard_steps(state, guard, now)
    for step in steps:
        state = record(state, step)
    return state, steps


def check_guard(guard: Any, version: str, phase: str, force: bool = False) -> None:
    """Refuse partial and full of a version the guard rolled back, until a new shadow acknowledges it.

    ``force`` does not override it: the lb itself refuses new weight while its record stands."""
    standing = guard_record.active(guard, version)
    if not standing or phase == "shadow":
        return
    override = (
        " (rollout_force does not override the guard: the lb refuses new weight while its record stands)"
        if force
        else ""
    )
    raise StateError(
        f"refusing {phase} of {version}: {guard_record.reason(standing[0])}; "
        f"run shadow.yml to start again{override}"
    )


def check_order(
    state: dict[str, Any], version: str, phase: str, force: bool, guard: Any = None
) -> str | None:
    """None when ``phase`` may start; else the refusal (raised, or returned as a warning with ``force``).

    A standing guard rollback (``guard``: the records the lbs answer) counts as a rollback of its version."""
    if phase not in PHASES:
        raise StateError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    check_guard(guard, version, phase, force)
    state = acknowledge(state, guard)[0]
    later = [p for p in PHASES[PHASES.index(phase) + 1 :] if passed(state, version, p)]
    if later:
        # Going back (e.g. shadow mode while live traffic flows to the new routers) is a rollback's job.
        message = (
            f"refusing {phase} of {version}: the rollout is already past it ({later[-1]} passed). "
            f"Run rollback.yml first, or -e rollout_force=true to override."
        )
        if not force:
            raise StateError(message)
        return message
    needed = PREREQUISITE[phase]
    if needed is None or passed(state, version, needed) or passed(state, version, phase):
        return None
    message = (
        f"refusing {phase} of {version}: its {needed} phase has not passed"
        f"{' since the last rollback' if rolled_back_since_passed(state, version, needed) else ''}"
        f" (state: phase {state.get('phase')}, weight {state.get('weight')}%, status {state.get('status')}). "
        f"Run {needed}.yml first, or -e rollout_force=true to override."
    )
    if not force:
        raise StateError(message)
    return message


def remaining(
    state: dict[str, Any], version: str, phase: str, weights: list[int], guard: Any = None
) -> list[int]:
    """The requested weights a re-run still has to do: a step passed for this version is not redone, unless
    a guard rollback (standing or recorded) came after it."""
    done = set(passed(acknowledge(state, guard)[0], version, phase))
    return [w for w in weights if int(w) not in done]


def record(state: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    """A new state with the step appended and phase, weight and status updated from it."""
    new = dict(state)
    new["steps"] = [*state.get("steps", []), step]
    new["version"] = step["version"]
    if step["phase"] == "rollback":
        new.update(phase="rollback", weight=0, status="aborted")
    else:
        ok = step.get("verdict") == SUCCESSFUL
        done = "completed" if step["phase"] == "full" else "progressing"
        new.update(
            phase=step["phase"],
            weight=int(step.get("weight", 0)) if ok else 0,
            status=step.get("status") or (done if ok else "aborted"),
        )
    return new


@dataclass(frozen=True)
class Lock:
    owner: str
    run_id: str
    playbook: str
    since: float
    expires: float
    controller: str = ""
    pid: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_lock(path: str) -> Lock | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return Lock(
            **{k: data[k] for k in ("owner", "run_id", "playbook", "since", "expires")},
            controller=str(data.get("controller", "")),
            pid=int(data.get("pid", 0)),
        )
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, KeyError, TypeError):
        # An unreadable lock protects nothing; treat it as stale rather than blocking every run forever.
        return Lock(owner="unknown", run_id="unreadable", playbook="?", since=0.0, expires=0.0)


def acquire(
    current: Lock | None, wanted: Lock, now: float, break_lock: bool, reason: str = "on request"
) -> tuple[Lock, str | None]:
    """Decide who holds the lock: the lock to write, and a warning when a stale or live lock was taken."""
    if current is None or current.run_id == wanted.run_id:
        return wanted, None
    if current.expires <= now:
        return wanted, (
            f"took over a stale lock of {current.owner} (run {current.run_id}, {current.playbook}, "
            f"expired {int(now - current.expires)} s ago)"
        )
    if break_lock:
        return (
            wanted,
            f"broke the lock of {current.owner} (run {current.run_id}, {current.playbook}): {reason}",
        )
    raise StateError(
        f"another rollout holds the lock: {current.owner} runs {current.playbook} (run {current.run_id}) "
        f"since {int(now - current.since)} s, lock valid {int(current.expires - now)} s more. Wait for it; "
        f"if that run is dead, run again with -e rollout_lock_break=true."
    )
