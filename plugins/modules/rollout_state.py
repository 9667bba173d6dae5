"""Ansible module: the rollout's persisted state and run lock on an lb host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollout_state
short_description: Persist a rollout's phase, weight, step history and decisions; refuse concurrent runs
version_added: "0.1.0"
description:
  - Keeps C(state.json) (phase, weight, status, every step with its verdict) and C(rollout.lock)
    in O(state_dir) on the lb hosts.
  - C(action=check) refuses a phase whose prerequisite has not passed for the same version (partial before a
    passed shadow, full before a passed partial) unless O(force), and returns which requested weights a re-run
    still has to do, so a second run of a passed step changes nothing.
  - C(action=lock) refuses a concurrent run with a message naming the holder; a lock past its expiry is
    stale and taken over with a warning; O(break_lock) takes a live one.
  - C(action=unlock) releases this run's lock.
  - C(action=record) appends a step (or a rollback) and updates phase, weight and status.
  - A rollback the lb's guard recorded (O(guard), as M(msgroute.rollout.traffic_runtime) C(state=query)
    returns it) counts like one of rollback.yml - C(action=check) refuses partial and full of its version
    with the guard's reason (alert, value against threshold, time) until a new shadow run, and a shadow run
    starts again from its first step.
  - C(action=record_guard) appends a rollback step (verdict C(Guard)) for each standing guard record the
    history does not hold yet, and says whether one stands for O(version) (RV(active), RV(msg)).
author:
  - msgroute.rollout developers (!UNKNOWN)
requirements:
  - python >= 3.9 on the host the module runs on
options:
  state_dir:
    description: Directory holding C(state.json) and C(rollout.lock).
    type: path
    required: true
  action:
    description: What to do.
    type: str
    choices: [read, check, lock, unlock, record, record_guard]
    default: read
  version:
    description: Release version the run rolls out (C(check), C(record), C(record_guard)).
    type: str
  guard:
    description:
      - With C(check) and C(record_guard), the guard's rollback record of each lb as
        M(msgroute.rollout.traffic_runtime) C(state=query) returns it (C(guard)) - one record, a list of them
        (null items are skipped), or null when no lb holds one.
      - A record counts while its C(active) is true; its C(version), C(alert), C(value), C(threshold) and
        C(at) (seconds since the epoch) make the reason. An C(lb) key, when added, names the lb in the
        history.
    type: raw
  phase:
    description: Phase the run wants to start (C(check)).
    type: str
    choices: [shadow, partial, full]
  weights:
    description: Weights the run was asked to do (C(check)); RV(remaining) drops those already passed.
    type: list
    elements: int
    default: []
  force:
    description:
      - With C(check), start a phase whose prerequisite has not passed (with a warning).
      - It does not override a standing guard rollback; the lb refuses new weight while the guard's record
        stands, and only a new shadow run clears it.
    type: bool
    default: false
  step:
    description:
      - With C(record), the step to append, for example C({phase, weight, verdict, message}).
      - C(phase=rollback) marks a rollback; the time is added by the module.
    type: dict
  run_id:
    description: Identifies this run for C(lock)/C(unlock).
    type: str
  owner:
    description: Who runs (shown to a concurrent run that is refused).
    type: str
    default: unknown
  playbook:
    description: Which playbook runs (shown to a concurrent run that is refused).
    type: str
    default: unknown
  controller:
    description: Host name of the controller running this play (recorded in the lock).
    type: str
    default: ""
  pid:
    description: Process id of C(ansible-playbook) on the controller (recorded in the lock).
    type: int
    default: 0
  ttl:
    description: Seconds the lock stays valid; past that a crashed run's lock is stale.
    type: int
    default: 3600
  break_lock:
    description: With C(lock), take a lock held by another live run.
    type: bool
    default: false
  break_reason:
    description: Why the lock is broken, for the warning.
    type: str
    default: on request
extends_documentation_fragment:
  - msgroute.rollout.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - C(lock) and C(unlock) report no change - the lock is run bookkeeping, not managed state - so an idempotent
    playbook stays idempotent. C(record) reports a change; C(record_guard) only when it added a step.
"""

EXAMPLES = r"""
- name: Refuse a concurrent rollout
  msgroute.rollout.rollout_state:
    state_dir: /var/lib/msgroute-rollout/lb
    action: lock
    run_id: "{{ rollout_run.id }}"
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}"
    playbook: partial.yml

- name: Which partial steps are left
  msgroute.rollout.rollout_state:
    state_dir: /var/lib/msgroute-rollout/lb
    action: check
    version: "2.0.0"
    phase: partial
    weights: [25, 50, 75]
    guard: "{{ ansible_play_hosts | map('extract', hostvars, 'rollout_guard_record') | list }}"
  register: partial_state

- name: Stop when the guard has rolled this version back (the rollback goes into the history)
  msgroute.rollout.rollout_state:
    state_dir: /var/lib/msgroute-rollout/lb
    action: record_guard
    version: "2.0.0"
    guard: "{{ runtime.guard }}"
  register: guarded
  failed_when: guarded.active
"""

RETURN = r"""
state:
  description: The state after the action.
  returned: always
  type: dict
  sample: {"version": "2.0.0", "phase": "partial", "weight": 50, "status": "progressing", "steps": []}
remaining:
  description: Requested weights not yet passed for this version (C(check)).
  returned: action is check
  type: list
  elements: int
lock:
  description: The lock now held (C(lock)), or the lock found (C(read); empty when none).
  returned: action is lock or read
  type: dict
warning:
  description: Why a stale lock was taken over, or why a forced phase would otherwise be refused.
  returned: when there is one
  type: str
active:
  description: Whether a guard rollback of O(version) stands (C(record_guard)).
  returned: action is record_guard
  type: bool
msg:
  description: "The reason of the standing guard rollback of O(version), for example
    'rolled back by guard: MsgrouteLatencyAboveTrigger (81.2ms vs 65ms) at 2026-12-02T06:40:00Z'."
  returned: action is record_guard and a guard rollback of O(version) stands
  type: str
verdict:
  description: C(Guard) when a guard rollback of O(version) stands.
  returned: action is record_guard and a guard rollback of O(version) stands
  type: str
recorded:
  description: The rollback steps C(record_guard) added to the history (none when it held them already).
  returned: action is record_guard
  type: list
  elements: dict
"""

import os
import time
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.msgroute.rollout.plugins.module_utils import guard_record
from ansible_collections.msgroute.rollout.plugins.module_utils import rollout_state as rs


def _write_lock(path: str, lock: rs.Lock) -> None:
    rs.save(path, lock.to_dict())


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state_dir": {"type": "path", "required": True},
            "action": {
                "type": "str",
                "choices": ["read", "check", "lock", "unlock", "record", "record_guard"],
                "default": "read",
            },
            "version": {"type": "str"},
            "guard": {"type": "raw"},
            "phase": {"type": "str", "choices": list(rs.PHASES)},
            "weights": {"type": "list", "elements": "int", "default": []},
            "force": {"type": "bool", "default": False},
            "step": {"type": "dict"},
            "run_id": {"type": "str"},
            "owner": {"type": "str", "default": "unknown"},
            "playbook": {"type": "str", "default": "unknown"},
            "controller": {"type": "str", "default": ""},
            "pid": {"type": "int", "default": 0},
            "ttl": {"type": "int", "default": 3600},
            "break_lock": {"type": "bool", "default": False},
            "break_reason": {"type": "str", "default": "on request"},
        },
        required_if=[
            ("action", "check", ["version", "phase"]),
            ("action", "record", ["version", "step"]),
            ("action", "record_guard", ["version"]),
            ("action", "lock", ["run_id"]),
            ("action", "unlock", ["run_id"]),
        ],
        supports_check_mode=True,
    )
    p = module.params
    state_path = os.path.join(p["state_dir"], "state.json")
    lock_path = os.path.join(p["state_dir"], "rollout.lock")
    try:
        state = rs.load(state_path)
        action = p["action"]
        if action == "read":
            found = rs.read_lock(lock_path)
            module.exit_json(changed=False, state=state, lock=found.to_dict() if found else {})
        if action == "check":
            warning = rs.check_order(state, p["version"], p["phase"], p["force"], p["guard"])
            result = {
                "changed": False,
                "state": state,
                "remaining": rs.remaining(state, p["version"], p["phase"], p["weights"], p["guard"]),
            }
            if warning:
                module.warn(warning)
                result["warning"] = warning
            module.exit_json(**result)
        now = time.time()
        if action == "lock":
            wanted = rs.Lock(
                owner=p["owner"],
                run_id=p["run_id"],
                playbook=p["playbook"],
                since=now,
                expires=now + p["ttl"],
                controller=p["controller"],
                pid=p["pid"],
            )
            lock, warning = rs.acquire(
                rs.read_lock(lock_path), wanted, now, p["break_lock"], p["break_reason"]
            )
            if not module.check_mode:
                _write_lock(lock_path, lock)
            result = {"changed": False, "state": state, "lock": lock.to_dict()}
            if warning:
                module.warn(warning)
                result["warning"] = warning
            module.exit_json(**result)
        if action == "unlock":
            current = rs.read_lock(lock_path)
            if current is not None and current.run_id == p["run_id"] and not module.check_mode:
                os.unlink(lock_path)
            module.exit_json(changed=False, state=state)
        # datetime.UTC needs Python 3.11; modules also run on older managed hosts.
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017
        if action == "record_guard":
            new_state, added = rs.acknowledge(state, p["guard"], at)
            if added and not module.check_mode:
                rs.save(state_path, new_state)
            standing = guard_record.active(p["guard"], p["version"])
            result = {"changed": bool(added), "state": new_state, "recorded": added, "active": bool(standing)}
            if standing:
                result.update(msg=guard_record.reason(standing[0]), verdict=guard_record.VERDICT)
            module.exit_json(**result)
        step = dict(p["step"], version=p["version"], at=at)
        new_state = rs.record(state, step)
        if not module.check_mode:
            rs.save(state_path, new_state)
        module.exit_json(changed=True, state=new_state)
    except ValueError as exc:  # rs.StateError, or a guard value that is not records
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"{p['state_dir']}: {exc}")


if __name__ == "__main__":
    main()
