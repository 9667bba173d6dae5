"""Loopback ports and endpoints for the processes the tests and benchmarks start."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    """A 127.0.0.1 port nobody listens on right now (the OS just released it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0) -> None:
    """Until ``url`` answers 200; ``RuntimeError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")
