"""Hostile and careless HTTP clients, and a destination that records raw request lines, all on 127.0.0.1.

Shared by tests/router_app_integration (behaviour) and bench/router/hostile.py (figures). Every loop here is
bounded (a count or a deadline) and every socket is closed by whoever opened it.

- ``RawSink``: an HTTP/1.1 destination in a thread that answers 200 and keeps each request's raw header lines
  and body bytes, so a test sees exactly what the router wrote on the wire.
- ``SlowClients``: connections that send a partial request head and then one byte now and then.
- ``EndlessUrl``: one connection that keeps sending a request line that never ends.
- ``timed_requests``: a normal keep-alive client's latencies.
- ``rss_bytes``: a process's resident memory (Linux ``/proc``).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    request_line: bytes
    header_lines: list[bytes]
    body: bytes

    def headers(self) -> dict[str, str]:
        """Lower-case name -> value (the last one when repeated)."""
        pairs = (line.split(b":", 1) for line in self.header_lines)
        return {name.strip().lower().decode(): value.strip().decode() for name, value in pairs}


@dataclass
class RawSink:
    """A destination that records raw requests; ``url`` to configure, ``stop()`` when done."""

    requests: list[RawRequest] = field(default_factory=list)
    _server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> RawSink:
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for _request in range(10_000):  # keep-alive: at most this many requests per connection
                    line = self.rfile.readline(65_536)
                    if not line:
                        return
                    lines = []
                    for _read in range(200):
                        header = self.rfile.readline(65_536)
                        if header in (b"\r\n", b"\n", b""):
                            break
                        lines.append(header.rstrip(b"\r\n"))
                    request = RawRequest(line.rstrip(b"\r\n"), lines, b"")
                    length = int(request.headers().get("content-length", "0"))
                    request.body = self.rfile.read(length)
                    sink.requests.append(request)
                    self.wfile.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
                    )
                    self.wfile.flush()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/deliver"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


class SlowClients:
    """``count`` connections, each with a request head that is never finished (a byte per ``tick``)."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.sockets: list[socket.socket] = []
        for i in range(count):
            with contextlib.suppress(OSError):
                sock = _connect(self.port)
                sock.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ".encode())
                self.sockets.append(sock)

    def tick(self) -> int:
        """One more byte on each connection still open; how many are still open."""
        alive = []
        for sock in self.sockets:
            try:
                sock.sendall(b"a")
                alive.append(sock)
            except OSError:
                sock.close()
        self.sockets = alive
        return len(alive)

    def answers(self) -> list[bytes]:
        """What the server sent back on each connection before closing it (non-blocking read)."""
        got = []
        for sock in self.sockets:
            sock.settimeout(0.5)
            try:
                got.append(sock.recv(4096))
            except OSError:
                got.append(b"")
        return got

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []


class EndlessUrl:
    """A request line that grows by ``chunk`` bytes per ``feed()`` until the server refuses it."""

    def __init__(self, port: int, chunk: int = 64 * 1024) -> None:
        self.sock = _connect(port)
        self.sock.sendall(b"GET /health?")
        self.chunk = b"a" * chunk
        self.sent = 0
        self.refused = False

    def feed(self) -> bool:
        """Send one more chunk; ``False`` once the server closed the connection."""
        if self.refused:
            return False
        try:
            self.sock.sendall(self.chunk)
            self.sent += len(self.chunk)
            return True
        except OSError:
            self.refused = True
            return False

    def answer(self) -> bytes:
        self.sock.settimeout(2)
        try:
            return self.sock.recv(4096)
        except OSError:
            return b""

    def close(self) -> None:
        self.sock.close()


def timed_requests(port: int, count: int, path: str = "/health") -> list[float]:
    """Latencies in seconds of ``count`` sequential GETs on one keep-alive connection (reconnecting if the
    server closed it)."""
    latencies = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _conn in range(count):
            start = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
            assert response.status == 200, response.status
            latencies.append(time.perf_counter() - start)
    finally:
        conn.close()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def raw_exchange(port: int, data: bytes, read_timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new connection and return everything the server answers until it closes or goes
    quiet for ``read_timeout`` seconds."""
    with _connect(port) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        sock.settimeout(read_timeout)
        chunks = []
        for _try in range(1000):
            try:
                chunk = sock.recv(65_536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer (0 when there is none)."""
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
