#!/usr/bin/python
"""Ansible module: set the new-pool weight and shadow percent nginx serves with, without a reload; read or
clear the guard's record."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: traffic_runtime
short_description: Set the split, shadow percent and pool members of a running msgroute nginx, no reload
version_added: "0.1.0"
description:
  - Reads, and when they differ changes, the values the nginx of role C(msgroute.rollout.traffic) splits and
    mirrors with. nginx applies them on the next request; no reload, so no kept-alive client connection is
    closed.
  - nginx answers this API only on the container's own loopback; the module reaches it with C(docker exec)
    and bash's C(/dev/tcp), so the image needs bash (every Debian-based image has it) but no HTTP client.
  - With O(members), the pools' members change in the same call (a router added or taken out, legacy retired
    or brought back). Members taken out are drained - the module returns once their last request in flight
    has ended (RV(drained)), so their containers can be stopped without cutting a request.
  - The values do not persist by themselves; the role writes the same values into nginx.conf first, which
    nginx loads on a restart or reload.
  - The guard in nginx (Alertmanager's webhook receiver, see docs/traffic.md) sets both values to 0 when a
    rollback alert fires for the version in force, and keeps a record of it. While that record stands, nginx
    refuses any value above 0 (the module fails with nginx's reason) and serves legacy only after a restart or
    reload; O(state=clear_guard) clears the record.
author:
  - msgroute.rollout developers (!UNKNOWN)
requirements:
  - python >= 3.9 on the host the module runs on
options:
  container:
    description: Name of the nginx container.
    type: str
    required: true
  state:
    description:
      - V(present) makes nginx serve O(new_weight) and O(shadow_percent).
      - V(query) only reads the values in force, the version nginx serves and the guard's record.
      - V(clear_guard) clears the guard's record, so the new pool may get traffic again (a new shadow run
        acknowledges the rollback). The values in force are left as they are (0 after the guard's rollback).
    type: str
    choices: [present, query, clear_guard]
    default: present
  new_weight:
    description: Percent of live requests sent to the new pool, 0-100. Required with O(state=present).
    type: int
  shadow_percent:
    description: Percent of requests copied to the new pool, 0-100. Required with O(state=present).
    type: int
  members:
    description:
      - The pools' members nginx sends requests to, C(legacy) and C(new), each a list of C(name) and
        C(address) (C(host:port)). A host name is resolved inside the nginx container
        (C(getent ahostsv4)), as nginx resolves upstream names; an optional C(peer) (C(ipv4:port)) is used
        as given.
      - Left out, the members stay as they are. A pool without members gets no request; O(new_weight) and
        O(shadow_percent) above 0 need a new member, O(new_weight) below 100 a legacy member.
    type: dict
    version_added: "0.2.0"
  drain_timeout:
    description: Seconds to wait for the requests in flight on members taken out to end (fails past it).
    type: float
    default: 30
    version_added: "0.2.0"
  reason:
    description: Why the guard's record is cleared (O(state=clear_guard)); nginx logs it and keeps it with the
      cleared record (C(guard.cleared.json)).
    type: str
    default: cleared with msgroute.rollout.traffic_runtime
    version_added: "0.2.0"
  admin_port:
    description: Port of the runtime API on the container's loopback.
    type: int
    default: 8081
  docker:
    description: The docker command on the host.
    type: str
    default: docker
  timeout:
    description: Seconds one call may take.
    type: float
    default: 10
extends_documentation_fragment:
  - msgroute.rollout.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The values and each pool's members, or with O(state=clear_guard) the guard's record, before and
      after.
"""

EXAMPLES = r"""
- name: Half of the live traffic to the new pool, mirror off
  msgroute.rollout.traffic_runtime:
    container: msgroute-lb
    new_weight: 50
    shadow_percent: 0

- name: Retire legacy at run time (members drained before the module returns)
  msgroute.rollout.traffic_runtime:
    container: msgroute-lb
    new_weight: 100
    shadow_percent: 0
    members:
      legacy: []
      new:
        - {name: router1-1, address: "router1.example.com:9001"}
        - {name: router2-1, address: "router2.example.com:9001"}
  register: retired

- name: Read what nginx serves with
  msgroute.rollout.traffic_runtime:
    container: msgroute-lb
    state: query
  register: runtime

- name: Say when the guard rolled the release back
  ansible.builtin.debug:
    msg: "rolled back by guard: {{ runtime.guard.alert }}"
  when: runtime.guard is not none and runtime.guard.active and runtime.guard.version == runtime.version

- name: A new shadow run acknowledges the guard's rollback
  msgroute.rollout.traffic_runtime:
    container: msgroute-lb
    state: clear_guard
    reason: shadow run of 2.0.1
"""

RETURN = r"""
before:
  description: The state before the call.
  returned: always
  type: dict
  sample: {"new_weight": 25, "shadow_percent": 0, "has_new": true, "has_legacy": true, "generation": 4,
           "changed_at": 1717000000.123, "loaded_at": 1716990000.5, "version": "2.0.0", "guard": null,
           "guard_in_force": false,
           "members": {"legacy": [{"name": "msgroute-legacy-1", "address": "172.18.0.3:8080",
                                   "peer": "172.18.0.3:8080", "down": false}],
                       "new": [{"name": "msgroute-router-1", "address": "172.18.0.5:8080",
                                "peer": "172.18.0.5:8080", "down": false}]},
           "in_flight": {"172.18.0.3:8080": 2}}
after:
  description: The state after the call (what nginx answered).
  returned: always
  type: dict
version:
  description: The release version the nginx configuration serves (C(rollout_version) when it was rendered).
  returned: always
  type: str
  sample: "2.0.0"
  version_added: "0.2.0"
guard:
  description:
    - The guard's record after the call, or V(null) when there is none. It binds the configuration only while
      C(active) is true and C(version) equals RV(version) (then C(after.guard_in_force) is true).
  returned: always
  type: dict
  sample: {"active": true, "version": "2.0.0", "alert": "MsgrouteLatencyAboveTrigger", "phase": "partial",
           "value": "81.2ms", "threshold": "65ms", "summary": "p95 above the rollback trigger",
           "at": 1764660000.123, "weights_before": {"new_weight": 50, "shadow_percent": 10}}
  version_added: "0.2.0"
drained:
  description: Peers (C(ipv4:port)) this call took out of the pools, each with the seconds until its last
    request in flight ended.
  returned: with O(state=present)
  type: dict
  sample: {"172.18.0.3:8080": 0.104}
  version_added: "0.2.0"
cleared:
  description: The record O(state=clear_guard) cleared (V(null) when there was none or in check mode).
  returned: when O(state=clear_guard)
  type: dict
  version_added: "0.2.0"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.msgroute.rollout.plugins.module_utils import traffic_runtime


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "container": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "query", "clear_guard"], "default": "present"},
            "reason": {"type": "str", "default": "cleared with msgroute.rollout.traffic_runtime"},
            "new_weight": {"type": "int"},
            "shadow_percent": {"type": "int"},
            "members": {"type": "dict"},
            "drain_timeout": {"type": "float", "default": 30},
            "admin_port": {"type": "int", "default": 8081},
            "docker": {"type": "str", "default": "docker"},
            "timeout": {"type": "float", "default": 10},
        },
        required_if=[("state", "present", ("new_weight", "shadow_percent"))],
        supports_check_mode=True,
    )
    params = module.params
    client = traffic_runtime.Client(
        params["container"], params["admin_port"], docker=params["docker"], timeout=params["timeout"]
    )
    extra = {}
    try:
        if params["state"] == "query":
            state = client.get()
            outcome = traffic_runtime.Outcome(False, state, state)
        elif params["state"] == "clear_guard":
            outcome = traffic_runtime.ensure_guard_cleared(
                client, params["reason"], check_mode=module.check_mode
            )
            extra["cleared"] = outcome.after.get("cleared")
        else:
            desired = traffic_runtime.check_values(params["new_weight"], params["shadow_percent"])
            members = params["members"]
            outcome = traffic_runtime.ensure(
                client,
                desired,
                check_mode=module.check_mode,
                members=None if members is None else traffic_runtime.check_members(members),
                drain_timeout=params["drain_timeout"],
            )
            extra["drained"] = outcome.drained or {}
        guard = traffic_runtime.guard_of(outcome.after)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except traffic_runtime.RuntimeApiError as exc:
        module.fail_json(msg=str(exc))
    diff = traffic_runtime.diff_of(outcome, params["container"], guard=params["state"] == "clear_guard")
    module.exit_json(
        changed=outcome.changed,
        before=outcome.before,
        after=outcome.after,
        version=outcome.after.get("version"),
        guard=guard,
        diff=diff,
        **extra,
    )


if __name__ == "__main__":
    main()
