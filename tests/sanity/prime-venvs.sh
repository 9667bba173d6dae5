#!/usr/bin/env bash
# Creates, online, every virtual environment `ansible-test sanity` runs its tests in, so that
# `make sanity` later runs offline. ansible-test keeps them in ~/.ansible/test/venv, keyed by the
# pinned requirements of the installed ansible-core (its _data/requirements/sanity.*.txt), and
# bootstraps pip into each one with get-pip.py from ci-files.testing.ansible.com, a host outside
# the registries this project may use: the stand-in below does what get-pip does (install pip and
# the packages asked for) with the same pip release, fetched from PyPI.
# Usage: tests/sanity/prime-venvs.sh COLLECTION_COPY PYTHON...   (see copy-collection.sh)
set -euo pipefail
root=$1
shift
cache=$HOME/.ansible/test/cache
# The pip release ansible-test bootstraps (get_venv_packages' default_packages).
pip_version=$(python - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="3.11"))["pip"])
PY
)
stand_in=$cache/get_pip_${pip_version//./_}.py
if [ ! -f "$stand_in" ]; then
  mkdir -p "$cache"
  python -m pip download --quiet --no-deps --only-binary=:all: --dest "$cache" "pip==$pip_version"
  wheel=$(ls "$cache"/pip-"$pip_version"-*.whl)
  cat >"$stand_in" <<PY
# Stand-in for get-pip.py $pip_version, written by tests/sanity/prime-venvs.sh: runs pip from its wheel
# to install what get-pip would (get-pip's own --no-setuptools/--no-wheel mean "do not add them").
import sys
sys.path.insert(0, "$wheel")
from pip._internal.cli.main import main
sys.exit(main(["install", *[a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]]))
PY
fi
cd "$root"
for python in "$@"; do
  ansible-test sanity --prime-venvs --local --python "$python" --color no
done
