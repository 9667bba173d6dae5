"""Fixtures of the traffic suite; the world itself is described in traffic_world.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from traffic_world import world  # noqa: F401  (the session fixture)
