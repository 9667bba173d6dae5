"""What check mode and diff mode mean for this collection's modules; each module says how far it goes."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and report what it would change without changing anything.
  diff_mode:
    description: Reports what changed (or would change, in check mode) when run in diff mode.
"""
