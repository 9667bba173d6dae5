#!/usr/bin/python
"""Ansible module: write a configuration file only after the server's own check accepts it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: staged_config
short_description: Stage, validate and atomically swap a configuration file, keeping the last-known-good copy
version_added: "0.1.0"
description:
  - Writes O(content) to a staged file beside O(dest), runs O(validate) on it, and only when the validator
    accepts it renames it over O(dest) (atomic within the directory).
  - The file it replaces is kept as O(dest) plus O(last_good_suffix), the last-known-good configuration that a
    rollback can restore.
  - A candidate the validator rejects is removed, O(dest) is left untouched, and the task fails with the
    validator's own message (for nginx, the output of C(nginx -t)).
  - Unlike M(ansible.builtin.template) with C(validate), the staged file lives in the destination directory,
    so a validator running in a container that mounts that directory at the same path can read it.
  - With O(restore=true) the last-known-good copy is put back over O(dest) instead, to undo a change that
    failed further on (it is not validated again, it was the live configuration).
author:
  - msgroute.rollout developers (!UNKNOWN)
requirements:
  - python >= 3.9 on the host the module runs on
options:
  dest:
    description: The live configuration file.
    type: path
    required: true
  content:
    description:
      - The new configuration (typically C(lookup('ansible.builtin.template', ...))).
      - Required unless O(restore=true).
    type: str
  restore:
    description: Put the last-known-good copy back over O(dest) instead of writing O(content).
    type: bool
    default: false
  runtime_pattern:
    description:
      - Regular expression of the lines that hold values the server also takes at run time.
      - When the new configuration differs only in such lines, RV(structural) is false, so the caller can
        apply the values at run time instead of reloading the server.
    type: str
  validate:
    description:
      - Command that checks the staged file; C(%s) is replaced by the staged file's path.
      - The command is not run through a shell.
      - When omitted the file is swapped without validation.
    type: str
  mode:
    description: File mode of the configuration, as an octal string.
    type: str
    default: "0644"
  last_good_suffix:
    description: Suffix of the last-known-good copy kept beside O(dest).
    type: str
    default: .last-good
  timeout:
    description: Seconds the validator may take.
    type: float
    default: 60
extends_documentation_fragment:
  - msgroute.rollout.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - In check mode nothing is written or validated; the diff shows what would change.
"""

EXAMPLES = r"""
- name: Apply the nginx configuration only if nginx -t accepts it
  msgroute.rollout.staged_config:
    dest: /var/lib/msgroute-rollout/lb/nginx.conf
    content: "{{ lookup('ansible.builtin.template', 'nginx.conf.j2') }}"
    validate: >-
      docker run --rm -v /var/lib/msgroute-rollout/lb:/var/lib/msgroute-rollout/lb:ro
      --entrypoint nginx openresty/openresty:1.27.1.2-bookworm -t -c %s
"""

RETURN = r"""
structural:
  description: Whether the configuration changed outside the lines matching O(runtime_pattern).
  returned: always
  type: bool
last_good:
  description: Path of the last-known-good copy written by this run, if the file existed before.
  returned: changed and not check mode
  type: str
  sample: /var/lib/msgroute-rollout/lb/nginx.conf.last-good
validation:
  description: The validator's output.
  returned: changed and not check mode
  type: str
  sample: "nginx: configuration file /var/lib/msgroute-rollout/lb/nginx.conf.staged test is successful"
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.msgroute.rollout.plugins.module_utils import staged_config


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "content": {"type": "str"},
            "restore": {"type": "bool", "default": False},
            "runtime_pattern": {"type": "str"},
            "validate": {"type": "str"},
            "mode": {"type": "str", "default": "0644"},
            "last_good_suffix": {"type": "str", "default": ".last-good"},
            "timeout": {"type": "float", "default": 60},
        },
        required_one_of=[("content", "restore")],
        mutually_exclusive=[("content", "restore")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        mode = int(params["mode"], 8)
    except ValueError:
        module.fail_json(msg=f"mode must be an octal string such as '0644', got {params['mode']!r}")
    if params["validate"]:
        try:
            staged_config.validation_command(params["validate"], "probe")
        except ValueError as exc:
            module.fail_json(msg=str(exc))

    if params["runtime_pattern"]:
        try:
            re.compile(params["runtime_pattern"])
        except re.error as exc:
            module.fail_json(msg=f"runtime_pattern is not a regular expression: {exc}")
    if params["restore"]:
        content = staged_config.read_text(params["dest"] + params["last_good_suffix"])
        if not content:
            module.fail_json(msg=f"{params['dest']}: no last-known-good copy to restore")
    else:
        content = params["content"]

    current = staged_config.plan(params["dest"], content, params["runtime_pattern"])
    diff = {
        "before": current.before,
        "after": current.after,
        "before_header": params["dest"],
        "after_header": params["dest"],
    }
    result = {
        "changed": current.changed,
        "structural": current.structural,
        "diff": diff if current.changed else {},
    }
    if not current.changed or module.check_mode:
        module.exit_json(**result)
    if params["restore"]:
        try:
            staged_config.restore(params["dest"], mode, params["last_good_suffix"], params["runtime_pattern"])
        except OSError as exc:
            module.fail_json(msg=f"{params['dest']}: {exc}")
        module.exit_json(**result)
    try:
        _plan, output, kept = staged_config.apply(
            params["dest"],
            content,
            params["validate"],
            mode,
            params["last_good_suffix"],
            params["timeout"],
            params["runtime_pattern"],
        )
    except staged_config.ValidationError as exc:
        module.fail_json(
            msg=f"{params['dest']}: the new configuration was rejected and not applied: {exc}",
            validation=exc.output,
            rc=exc.returncode,
        )
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"{params['dest']}: {exc}")
    module.exit_json(**result, validation=output, last_good=kept)


if __name__ == "__main__":
    main()
