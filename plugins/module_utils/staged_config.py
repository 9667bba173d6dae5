"""Stage, validate and atomically swap a configuration file, keeping the last-known-good copy.

The rules of a safe nginx change live here as plain functions: a candidate is written next to the live file,
validated by the server's own check, and only then renamed over the live file (rename is atomic within a
directory), after the live file has been kept as ``<dest><last_good_suffix>``. A candidate that fails
validation is removed and never goes live.

Some servers take a few values at run time as well (nginx's split weight through its runtime API): lines
matching a ``runtime_pattern`` carry such values, and a change confined to them is not *structural*, so the
caller can apply it at run time instead of reloading.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass


class ValidationError(RuntimeError):
    """The validator rejected the candidate; ``output`` is the validator's own message."""

    def __init__(self, command: list[str], returncode: int, output: str) -> None:
        super().__init__(output.strip() or f"{command[0]} exited with {returncode}")
        self.command = command
        self.returncode = returncode
        self.output = output


@dataclass(frozen=True)
class Plan:
    changed: bool
    before: str
    after: str
    structural: bool = True


def read_text(path: str) -> str:
    """The current content, or '' when the file does not exist yet."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def structural_change(before: str, after: str, runtime_pattern: str | None = None) -> bool:
    """Whether the two texts differ in a line that does not match ``runtime_pattern``."""
    if before == after:
        return False
    if not runtime_pattern:
        return True
    runtime = re.compile(runtime_pattern)

    def fixed(text: str) -> list[str]:
        return [line for line in text.splitlines() if not runtime.search(line)]

    return fixed(before) != fixed(after)


def plan(dest: str, content: str, runtime_pattern: str | None = None) -> Plan:
    before = read_text(dest)
    return Plan(
        changed=before != content,
        before=before,
        after=content,
        structural=structural_change(before, content, runtime_pattern),
    )


def validation_command(template: str, staged_path: str) -> list[str]:
    """Split the validate command and put the staged file where ``%s`` stands."""
    if "%s" not in template:
        raise ValueError("validate must contain %s where the staged file's path goes")
    return [part.replace("%s", staged_path) for part in shlex.split(template)]


def stage(dest: str, content: str, mode: int) -> str:
    """Write ``content`` to a new file beside ``dest`` (same directory, so the later rename is atomic)."""
    directory = os.path.dirname(os.path.abspath(dest))
    fd, staged = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".staged", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(staged, mode)
    return staged


def validate(command: list[str], timeout: float) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ValidationError(command, -1, f"validator timed out after {timeout} s") from None
    except FileNotFoundError:
        raise ValidationError(command, -1, f"validator not found: {command[0]}") from None
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise ValidationError(command, result.returncode, output)
    return output


def swap(staged: str, dest: str, last_good_suffix: str) -> str | None:
    """Keep the live file as last-known-good, then rename the staged file over it. Returns the copy's path."""
    kept = None
    if os.path.exists(dest):
        kept = dest + last_good_suffix
        with open(dest, "rb") as src, open(kept + ".tmp", "wb") as out:
            out.write(src.read())
        os.replace(kept + ".tmp", kept)
    os.replace(staged, dest)
    return kept


def apply(
    dest: str,
    content: str,
    validate_template: str | None,
    mode: int,
    last_good_suffix: str,
    timeout: float,
    runtime_pattern: str | None = None,
) -> tuple[Plan, str, str | None]:
    """Stage, validate and swap. Returns the plan, the validator's output and the last-known-good path."""
    current = plan(dest, content, runtime_pattern)
    if not current.changed:
        return current, "", None
    staged = stage(dest, content, mode)
    try:
        output = validate(validation_command(validate_template, staged), timeout) if validate_template else ""
    except BaseException:
        os.unlink(staged)
        raise
    kept = swap(staged, dest, last_good_suffix)
    return current, output, kept


def restore(dest: str, mode: int, last_good_suffix: str, runtime_pattern: str | None = None) -> Plan:
    """Put the last-known-good copy back over ``dest`` (atomically), leaving that copy as it is.

    Used to undo a swap whose change failed further on (another lb host could not switch): the copy was the
    live, validated configuration a moment ago, so it is not validated again.
    """
    kept = dest + last_good_suffix
    if not os.path.exists(kept):
        raise FileNotFoundError(f"no last-known-good copy at {kept}")
    content = read_text(kept)
    current = plan(dest, content, runtime_pattern)
    if current.changed:
        os.replace(stage(dest, content, mode), dest)
    return current
