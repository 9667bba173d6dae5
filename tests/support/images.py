"""The local Debian base image the images role built (``playbooks/prepare.yml`` on inventories/local).

``python -m tests.support.images`` prints it (the Makefile's molecule target uses that); it exits 1 with the
reason when there is none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

BASE_IMAGE_ENV = "MSGROUTE_BASE_IMAGE"
BASE_REPOSITORY = "local/debian"
BASE_TAG_PREFIX = "bookworm"


class MissingImage(LookupError):
    """No base image to build from: the tests that need one fail with this, they never skip."""


def base_image() -> str:
    """``$MSGROUTE_BASE_IMAGE``, else the newest ``local/debian:bookworm*`` on the local engine."""
    if os.environ.get(BASE_IMAGE_ENV):
        return os.environ[BASE_IMAGE_ENV]
    if not shutil.which("docker"):
        raise MissingImage("no docker CLI: install the Docker engine (`make prepare` does)")
    listed = subprocess.run(
        ["docker", "images", BASE_REPOSITORY, "--format", "{{.CreatedAt}}\t{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if listed.returncode != 0:
        raise MissingImage(f"docker images failed: {listed.stderr.strip()}")
    refs = [
        line.split("\t")[1]
        for line in sorted(filter(None, listed.stdout.splitlines()), reverse=True)
        if line.split("\t")[1].startswith(f"{BASE_REPOSITORY}:{BASE_TAG_PREFIX}")
    ]
    if not refs:
        raise MissingImage(
            f"no {BASE_REPOSITORY}:{BASE_TAG_PREFIX}-* image: run `make prepare` (or set {BASE_IMAGE_ENV})"
        )
    return refs[0]


def main() -> int:
    try:
        print(base_image())
    except MissingImage as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
