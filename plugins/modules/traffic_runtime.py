#!/usr/bin/python
"""Ansible module: set the new-pool weight and shadow percent nginx serves with, without a reload."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: traffic_runtime
short_description: Set the split weight and shadow percent of a running msgroute nginx without a reload
version_added: "0.1.0"
description:
  - Reads, and when they differ changes, the values the nginx of role C(msgroute.rollout.traffic) splits and
    mirrors with. nginx applies them on the next request; no reload, so no kept-alive client connection is
    closed.
  - nginx answers this API only on the container's own loopback; the module reaches it with C(docker exec)
    and bash's C(/dev/tcp), so the image needs bash (every Debian-based image has it) but no HTTP client.
  - The values do not persist by themselves; the role writes the same values into nginx.conf first, which
    nginx loads on a restart or reload.
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
      - V(query) only reads the values in force.
    type: str
    choices: [present, query]
    default: present
  new_weight:
    description: Percent of live requests sent to the new pool, 0-100. Required with O(state=present).
    type: int
  shadow_percent:
    description: Percent of requests copied to the new pool, 0-100. Required with O(state=present).
    type: int
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
"""

EXAMPLES = r"""
- name: Half of the live traffic to the new pool, mirror off
  msgroute.rollout.traffic_runtime:
    container: msgroute-lb
    new_weight: 50
    shadow_percent: 0

- name: Read what nginx serves with
  msgroute.rollout.traffic_runtime:
    container: msgroute-lb
    state: query
  register: runtime
"""

RETURN = r"""
before:
  description: The state before the call.
  returned: always
  type: dict
  sample: {"new_weight": 25, "shadow_percent": 0, "has_new": true, "has_legacy": true, "generation": 4,
           "changed_at": 1717000000.123}
after:
  description: The state after the call (what nginx answered).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.msgroute.rollout.plugins.module_utils import traffic_runtime


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "container": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "query"], "default": "present"},
            "new_weight": {"type": "int"},
            "shadow_percent": {"type": "int"},
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
    try:
        if params["state"] == "query":
            state = client.get()
            module.exit_json(changed=False, before=state, after=state)
        desired = traffic_runtime.check_values(params["new_weight"], params["shadow_percent"])
        outcome = traffic_runtime.ensure(client, desired, check_mode=module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except traffic_runtime.RuntimeApiError as exc:
        module.fail_json(msg=str(exc))
    diff = {}
    if outcome.changed:
        fields = traffic_runtime.FIELDS
        diff = {
            "before": "".join(f"{f}: {outcome.before.get(f)}\n" for f in fields),
            "after": "".join(f"{f}: {outcome.after.get(f)}\n" for f in fields),
            "before_header": f"{params['container']} runtime",
            "after_header": f"{params['container']} runtime",
        }
    module.exit_json(changed=outcome.changed, before=outcome.before, after=outcome.after, diff=diff)


if __name__ == "__main__":
    main()
