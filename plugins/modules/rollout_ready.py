"""Ansible module: wait until every instance of a pool answers ready."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollout_ready
short_description: Wait until every router instance answers ready
version_added: "0.1.0"
description:
  - Probes every URL in O(urls) (typically C(http://host:port/ready)) every O(interval) seconds until each
    answered HTTP 200 on its latest probe, or O(timeout) seconds passed.
  - Fails naming every instance that is not ready and what it last answered.
author:
  - msgroute.rollout developers (!UNKNOWN)
requirements:
  - python >= 3.9 on the host the module runs on
options:
  urls:
    description: Readiness URLs, one per instance.
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds to wait for all instances.
    type: float
    default: 60
  interval:
    description: Seconds between probe rounds.
    type: float
    default: 1
  probe_timeout:
    description: Seconds one probe may take.
    type: float
    default: 2
extends_documentation_fragment:
  - msgroute.rollout.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Read-only; it runs in check mode too.
"""

EXAMPLES = r"""
- name: Wait for the new pool
  msgroute.rollout.rollout_ready:
    urls:
      - http://127.0.0.1:18081/ready
      - http://127.0.0.1:18082/ready
    timeout: 60
"""

RETURN = r"""
instances:
  description: Per URL, whether it is ready, what it last answered and how often it was probed.
  returned: always
  type: dict
  sample: {"http://127.0.0.1:18081/ready": {"ready": true, "last": "HTTP 200", "attempts": 3}}
waited:
  description: Seconds waited.
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.msgroute.rollout.plugins.module_utils import _http as http
from ansible_collections.msgroute.rollout.plugins.module_utils.readiness import Wait


def probe(url: str, timeout: float) -> tuple[int | None, str | None]:
    try:
        http.fetch_text(url, timeout)
        return 200, None
    except http.FetchError as exc:
        return exc.status, str(exc.cause)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "urls": {"type": "list", "elements": "str", "required": True},
            "timeout": {"type": "float", "default": 60},
            "interval": {"type": "float", "default": 1},
            "probe_timeout": {"type": "float", "default": 2},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        wait = Wait.of(p["urls"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    start = time.monotonic()
    while True:
        for url in wait.pending():
            wait.record(url, *probe(url, p["probe_timeout"]))
        waited = time.monotonic() - start
        if wait.done() or waited >= p["timeout"]:
            break
        time.sleep(p["interval"])
    result = {
        "changed": False,
        "instances": wait.to_dict(),
        "waited": round(waited, 2),
        "msg": wait.message(waited),
    }
    if not wait.done():
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
