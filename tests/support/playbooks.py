"""ansible-playbook run the way a user runs it, from the repository root, its output kept for a look."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support import BIN, LOGS, ROOT

RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class PlaybookRun:
    name: str
    returncode: int
    output: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m.group(1): {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(self.output)
        }

    def changed(self, host: str) -> int:
        """``changed=`` of ``host`` in the recap; an ``AssertionError`` when the recap does not name it."""
        if host not in self.recap:
            raise AssertionError(f"no recap for {host}:\n{self.output[-3000:]}")
        return self.recap[host]["changed"]

    @property
    def flat(self) -> str:
        """The output on one line, every run of whitespace one space (a message wrapped by the callback)."""
        return " ".join(self.output.split())

    def gate_lines(self) -> list[str]:
        """The verdict lines the playbooks print ("GATE <phase> <weight>%: <verdict> - <message>")."""
        lines = [line[line.find("GATE ") :] for line in self.output.splitlines() if "GATE " in line]
        return [line.strip().strip("'\"") for line in lines]


def run_playbook(
    playbook: str | Path,
    *args: str,
    inventories: Sequence[str | Path],
    env: Mapping[str, str] | None = None,
    timeout: float = 1200,
    log_prefix: str = "",
) -> PlaybookRun:
    """``ansible-playbook -i <inventory>... <playbook> <args>`` from the root with the project's ansible.cfg.

    The whole output is kept as results/test-logs/<prefix><time>-<playbook name>.log.
    """
    full_env = dict(
        os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1"
    )
    full_env.update(env or {})
    command = [str(BIN / "ansible-playbook")]
    for inventory in inventories:
        command += ["-i", str(inventory)]
    command += [str(playbook), *args]
    proc = subprocess.run(
        command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    name = Path(playbook).name
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{log_prefix}{time.strftime('%H%M%S')}-{name}.log"
    log.write_text(" ".join(command) + "\n" + proc.stdout + proc.stderr)
    return PlaybookRun(name, proc.returncode, proc.stdout + proc.stderr)
