"""A stand-in for ``docker exec <container> bash -c <script> <name> <port> <request>`` against the runtime API
of the traffic role's nginx (plugins/module_utils/traffic_runtime.py): it answers
``<dir>/<container>.json``, the state a real nginx would hold, where <dir> is this file's directory; no such
file, no such container. ``DELETE /_msgroute/guard`` clears the guard's record and answers the old one, as
the guard's contract says. Each call is added to ``<dir>/<container>.calls``, for tests that wait for them."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    container, request = argv[1], argv[-1]
    path = Path(__file__).resolve().parent / f"{container}.json"
    if not path.exists():
        print(f"Error response from daemon: No such container: {container}", file=sys.stderr)
        return 1
    with path.with_suffix(".calls").open("a") as calls:
        calls.write(request + "\n")
    state = json.loads(path.read_text())
    method, target = request.split(" ", 2)[:2]
    body = state
    if method == "DELETE" and target.startswith("/_msgroute/guard"):
        body = {"guard": state.get("guard")}
        state["guard"] = None
        path.write_text(json.dumps(state))
    elif method != "GET":
        print('HTTP/1.1 405 Not Allowed\r\n\r\n{"error": "method"}', end="")
        return 0
    print(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{json.dumps(body)}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
